;; Registers as "sink<core>" and exits with the number of messages it
;; received once it has 200 from every core's sender.
(data (i32.const 0) "sink0")
(func (export "_start") (local $n i32) (local $total i32)
  (local.set $total (i32.mul (i32.const 200) (call $core_count)))
  (i32.store8 (i32.const 4) (i32.add (i32.const 48) (call $core_id)))
  (drop (call $register (i32.const 0) (i32.const 5) (i32.const 0)))
  (loop $l
    (if (i32.ge_s (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)) (i32.const 0))
      (then (local.set $n (i32.add (local.get $n) (i32.const 1)))))
    (br_if $l (i32.lt_u (local.get $n) (local.get $total))))
  (call $exit (local.get $n)))
