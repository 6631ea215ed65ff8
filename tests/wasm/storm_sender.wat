;; Sends 200 messages to every core's sink ("sink0", "sink1", ...),
;; retrying after a short sleep when a queue is full (WOULD_BLOCK = -3).
(data (i32.const 0) "sink0")
(func (export "_start") (local $k i32) (local $h i32) (local $i i32)
  (loop $sinks
    (i32.store8 (i32.const 4) (i32.add (i32.const 48) (local.get $k)))
    (local.set $h (call $lookup_wait (i32.const 0) (i32.const 5)))
    (local.set $i (i32.const 0))
    (loop $msgs
      (i32.store (i32.const 2048) (local.get $i))
      (if (i32.eq (call $send (local.get $h) (i32.const 2048) (i32.const 4)) (i32.const -3))
        (then (drop (call $sleep (i64.const 20000))) (br $msgs)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $msgs (i32.lt_u (local.get $i) (i32.const 200))))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (br_if $sinks (i32.lt_u (local.get $k) (call $core_count))))
  (call $exit (i32.const 0)))
