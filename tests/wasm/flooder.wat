;; Floods "rate" with one-way messages for 1.5 s, as fast as the kernel
;; lets it (WOULD_BLOCK, when the server's inbox is full, is simply tried
;; again), or until the server is gone (DEAD_TARGET: the healthy client
;; stops it). Exits 0, or 1000 - status on any other error.
(data (i32.const 0) "rate")
(func (export "_start") (local $h i32) (local $r i32) (local $end i64)
  (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
  (local.set $end (i64.add (call $now) (i64.const 1500000000)))
  (loop $l
    (local.set $r (call $send (local.get $h) (i32.const 2048) (i32.const 4)))
    (if (i32.eq (local.get $r) (i32.const -4)) (then (call $exit (i32.const 0))))
    (if (i32.and (i32.ne (local.get $r) (i32.const 0)) (i32.ne (local.get $r) (i32.const -3)))
      (then (call $exit (i32.sub (i32.const 1000) (local.get $r)))))
    (br_if $l (i64.lt_u (call $now) (local.get $end))))
  (call $exit (i32.const 0)))
