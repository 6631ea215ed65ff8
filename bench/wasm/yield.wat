;; argv: count. Times `sched_yield` with another yielding task on the
;; core: a switch to it and back.
(func (export "_start") (local $i i32) (local $n i32) (local $t i64)
  (call $args_load)
  (local.set $n (call $arg_num (i32.const 1)))
  (loop $l
    (local.set $t (call $now))
    (drop (call $yield))
    (call $record (local.get $i) (i64.sub (call $now) (local.get $t)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (call $dump (local.get $n))
  (call $exit (i32.const 0)))
