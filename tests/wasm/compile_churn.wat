;; child: compile_leaf
;; Spawns 1200 distinct binaries (its child with the count written over
;; the child's AAAA), one at a time, waiting for each to end. Exits with
;; count * 16 - status of the first refused spawn, or count * 16.
(data (i32.const 0) "child")
(data (i32.const 8192) "$CHILD_BYTES")
(func (export "_start") (local $at i32) (local $n i32) (local $h i32)
  ;; Find the AAAA in the child.
  (local.set $at (i32.const 8192))
  (loop $find
    (if (i32.ne (i32.load (local.get $at)) (i32.const 0x41414141))
      (then (local.set $at (i32.add (local.get $at) (i32.const 1))) (br $find))))
  (loop $spawn
    (i32.store (local.get $at) (local.get $n))
    (local.set $h (call $spawn (i32.const 8192) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 5) (call $core_id) (i32.const 0) (i32.const 0)))
    (if (i32.lt_s (local.get $h) (i32.const 0))
      (then (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $h)))))
    (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
    (drop (call $close (local.get $h)))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (br_if $spawn (i32.lt_u (local.get $n) (i32.const 1200))))
  (call $exit (i32.mul (local.get $n) (i32.const 16))))
