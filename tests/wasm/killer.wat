;; Spawns a sleeper (embedded by the harness; it sleeps 0.5 s) on every
;; core and kills each: on even cores at once (it may not have started),
;; on odd cores 1 ms later (it sleeps). Every child must be reported
;; killed (reason 7, code -1). Exits with the number of cores, or 1000 +
;; the step that failed.
(data (i32.const 0) "child")
(data (i32.const 4096) "$CHILD_BYTES")
(func (export "_start") (local $k i32) (local $n i32) (local $h i32)
  (local.set $n (call $core_count))
  (loop $spawn
    (local.set $h (call $spawn (i32.const 4096) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 5) (local.get $k) (i32.const 0) (i32.const 0)))
    (if (i32.le_s (local.get $h) (i32.const 0)) (then (call $exit (i32.const 1001))))
    (i32.store (i32.add (i32.const 8192) (i32.shl (local.get $k) (i32.const 2))) (local.get $h))
    (if (i32.eqz (i32.and (local.get $k) (i32.const 1)))
      (then (if (call $kill (local.get $h)) (then (call $exit (i32.const 1002))))))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br_if $spawn (i32.lt_u (local.get $k) (local.get $n))))
  (drop (call $sleep (i64.const 1000000)))
  (local.set $k (i32.const 1))
  (block $done (loop $odd
    (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
    (if (call $kill (i32.load (i32.add (i32.const 8192) (i32.shl (local.get $k) (i32.const 2)))))
      (then (call $exit (i32.const 1003))))
    (local.set $k (i32.add (local.get $k) (i32.const 2)))
    (br $odd)))
  (local.set $k (i32.const 0))
  (loop $reports
    (if (i32.lt_s (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const 10000000000)) (i32.const 0))
      (then (call $exit (i32.const 1004))))
    (if (i32.ne (i32.load (i32.const 512)) (i32.const 4)) (then (call $exit (i32.const 1005))))
    (if (i32.ne (i32.load8_u (i32.const 532)) (i32.const 7)) (then (call $exit (i32.const 1006))))
    (if (i32.ne (i32.load (i32.const 528)) (i32.const -1)) (then (call $exit (i32.const 1007))))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br_if $reports (i32.lt_u (local.get $k) (local.get $n))))
  (call $exit (local.get $n)))
