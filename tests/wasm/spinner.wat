;; Counts to 3 million without a single system call, then exits 3: only
;; fuel preemption lets anything else on its core run meanwhile.
(func (export "_start") (local $i i32)
  (loop $l
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (i32.const 3000000))))
  (call $exit (i32.const 3)))
