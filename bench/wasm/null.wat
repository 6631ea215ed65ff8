;; argv: count, reps. Each sample times reps x 10 `core_id` host calls
;; (the null system call), unrolled ten times to keep loop overhead small.
(func (export "_start") (local $i i32) (local $n i32) (local $reps i32) (local $j i32) (local $t i64)
  (call $args_load)
  (local.set $n (call $arg_num (i32.const 1)))
  (local.set $reps (call $arg_num (i32.const 2)))
  (loop $l
    (local.set $j (local.get $reps))
    (local.set $t (call $now))
    (loop $inner
      (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id))
      (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id)) (drop (call $core_id))
      (local.set $j (i32.sub (local.get $j) (i32.const 1)))
      (br_if $inner (local.get $j)))
    (call $record (local.get $i) (i64.sub (call $now) (local.get $t)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (call $dump (local.get $n))
  (call $exit (i32.const 0)))
