;; Calls "rate" as fast as it can for 500 ms (from its first call), stops
;; the server, and exits with the number of calls answered: the healthy
;; workload's throughput. A failed call exits 1000000 - status.
(data (i32.const 0) "rate")
(func (export "_start") (local $h i32) (local $n i32) (local $r i32) (local $end i64)
  (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
  (local.set $end (i64.add (call $now) (i64.const 500000000)))
  (loop $l
    (i32.store (i32.const 2048) (local.get $n))
    (local.set $r (call $call (local.get $h) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64)))
    (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.sub (i32.const 1000000) (local.get $r)))))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (br_if $l (i64.lt_u (call $now) (local.get $end))))
  (i32.store (i32.const 2048) (i32.const -1))
  (block $sent (loop $stop
    (br_if $sent (i32.ne (call $send (local.get $h) (i32.const 2048) (i32.const 4)) (i32.const -3)))
    (drop (call $sleep (i64.const 20000)))
    (br $stop)))
  (call $exit (local.get $n)))
