;; A short computation that exits 5.
(func (export "_start") (local $i i32)
  (loop $l
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (i32.const 10000))))
  (call $exit (i32.const 5)))
