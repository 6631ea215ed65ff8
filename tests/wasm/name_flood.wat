;; child: namer
;; Spawns 62 namers (embedded by the harness), round robin over the cores,
;; as ordinary tasks, and collects their exits. Exits with
;; total names * 4 + 1 (if one met NO_MEMORY) + 2 (if every one ended with
;; QUOTA_EXCEEDED or NO_MEMORY), or -1000 + a spawn's status.
(data (i32.const 0) "namer")
(data (i32.const 8192) "$CHILD_BYTES")
(func (export "_start") (local $k i32) (local $h i32) (local $total i32) (local $nomem i32) (local $ok i32) (local $code i32) (local $st i32)
  (local.set $ok (i32.const 2))
  (loop $spawn
    (local.set $h (call $spawn (i32.const 8192) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 5) (i32.const -1) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.add (i32.const -1000) (local.get $h)))))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br_if $spawn (i32.lt_u (local.get $k) (i32.const 62))))
  (loop $exits
    (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
    (if (i32.eq (i32.load (i32.const 512)) (i32.const 4))
      (then
        (local.set $code (i32.load (i32.const 528)))
        (local.set $total (i32.add (local.get $total) (i32.shr_u (local.get $code) (i32.const 4))))
        (local.set $st (i32.and (local.get $code) (i32.const 15)))
        (if (i32.eq (local.get $st) (i32.const 8)) (then (local.set $nomem (i32.const 1))))
        (if (i32.and (i32.ne (local.get $st) (i32.const 8)) (i32.ne (local.get $st) (i32.const 10)))
          (then (local.set $ok (i32.const 0))))
        (local.set $k (i32.sub (local.get $k) (i32.const 1)))))
    (br_if $exits (i32.gt_u (local.get $k) (i32.const 0))))
  (call $exit (i32.add (i32.mul (local.get $total) (i32.const 4)) (i32.add (local.get $nomem) (local.get $ok)))))
