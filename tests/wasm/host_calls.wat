;; Ten million host calls from one Wasm loop: `core_id`, ten per
;; iteration (unrolled, so the calls dominate), summed; a task never
;; moves between cores, so the sum must be ten million times the first
;; answer. Exits with the number of calls made, or -1 if the sum is wrong.
;; In the kernel this runs on a stack with a guard page: an interpreter
;; whose dispatch grew the native stack per executed instruction (the
;; soft-float tail-call bug) would run into it and stop the machine with
;; a double fault long before the end.
(func (export "_start") (local $i i32) (local $core i64) (local $sum i64)
  (local.set $core (i64.extend_i32_u (call $core_id)))
  (loop $l
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (call $core_id))))
    (local.set $i (i32.add (local.get $i) (i32.const 10)))
    (br_if $l (i32.lt_u (local.get $i) (i32.const 10000000))))
  (if (i64.ne (local.get $sum) (i64.mul (local.get $core) (i64.const 10000000)))
    (then (call $exit (i32.const -1))))
  (call $exit (local.get $i)))
