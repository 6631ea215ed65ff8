;; Computes without system calls for about 1.5 s (it looks at the clock
;; once per 2 million iterations only): what keeps its core's other tasks
;; going is fuel preemption alone. Exits 0.
(func (export "_start") (local $i i32) (local $end i64)
  (local.set $end (i64.add (call $now) (i64.const 1500000000)))
  (loop $outer
    (local.set $i (i32.const 0))
    (loop $inner
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $inner (i32.lt_u (local.get $i) (i32.const 2000000))))
    (br_if $outer (i64.lt_u (call $now) (local.get $end))))
  (call $exit (i32.const 0)))
