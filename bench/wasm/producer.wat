;; argv: service, count. Sends `count` one-way 4-byte messages to the
;; service; a full queue (WOULD_BLOCK, -3) yields and retries.
(func (export "_start") (local $h i32) (local $i i32) (local $n i32) (local $len i32) (local $r i32)
  (call $args_load)
  (local.set $len (call $arg_name (i32.const 1)))
  (local.set $n (call $arg_num (i32.const 2)))
  (local.set $h (call $lookup_wait (i32.const 0) (local.get $len)))
  (loop $l
    (i32.store (i32.const 2048) (local.get $i))
    (local.set $r (call $send (local.get $h) (i32.const 2048) (i32.const 4)))
    (if (i32.eq (local.get $r) (i32.const -3)) (then (drop (call $yield)) (br $l)))
    (if (i32.lt_s (local.get $r) (i32.const 0)) (then (call $exit (i32.const 1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (call $exit (i32.const 0)))
