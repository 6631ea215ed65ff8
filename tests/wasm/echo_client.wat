;; Calls "echo" 1000 times and checks every reply is its request plus one,
;; then stops the server. A full queue (WOULD_BLOCK, -3) is retried after
;; 20 us. Exit 0 = all good; 2 = wrong reply; 1000 - status = a call failed
;; with that status.
(data (i32.const 0) "echo")
(func (export "_start") (local $h i32) (local $i i32) (local $r i32)
  (local.set $h (call $lookup_wait (i32.const 0) (i32.const 4)))
  (loop $l
    (i32.store (i32.const 2048) (local.get $i))
    (local.set $r (call $call (local.get $h) (i32.const 2048) (i32.const 4) (i32.const 3072) (i32.const 64)))
    (if (i32.eq (local.get $r) (i32.const -3)) (then (drop (call $sleep (i64.const 20000))) (br $l)))
    (if (i32.ne (local.get $r) (i32.const 4)) (then (call $exit (i32.sub (i32.const 1000) (local.get $r)))))
    (if (i32.ne (i32.load (i32.const 3072)) (i32.add (local.get $i) (i32.const 1))) (then (call $exit (i32.const 2))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
  (i32.store (i32.const 2048) (i32.const -1))
  (block $sent (loop $stop
    (br_if $sent (i32.ne (call $send (local.get $h) (i32.const 2048) (i32.const 4)) (i32.const -3)))
    (drop (call $sleep (i64.const 20000)))
    (br $stop)))
  (call $exit (i32.const 0)))
