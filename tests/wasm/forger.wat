;; For 1.5 s, uses handles it was never given and pointers that run off
;; its memory, in every call that takes them. Each must fail with the
;; right status (INVALID_HANDLE -1, BAD_POINTER -5); exits 0 if all did,
;; else the number of the check that did not.
(func (export "_start") (local $i i32) (local $end i64)
  (local.set $end (i64.add (call $now) (i64.const 1500000000)))
  (loop $l
    (local.set $i (i32.add (local.get $i) (i32.const 7919)))
    (if (i32.ne (call $send (i32.or (local.get $i) (i32.const 1)) (i32.const 0) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 1))))
    (if (i32.ne (call $call (local.get $i) (i32.const 0) (i32.const 4) (i32.const 64) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 2))))
    (if (i32.ne (call $notify (i32.add (local.get $i) (i32.const 3)) (i64.const 1)) (i32.const -1)) (then (call $exit (i32.const 3))))
    (if (i32.ne (call $close (i32.add (local.get $i) (i32.const 5))) (i32.const -1)) (then (call $exit (i32.const 4))))
    (if (i32.ne (call $print (i32.const 65000) (i32.const 1000)) (i32.const -5)) (then (call $exit (i32.const 5))))
    (if (i32.ne (call $recv (i32.const -1) (i32.const 65530) (i32.const 100) (i32.const 0) (i64.const 0)) (i32.const -5)) (then (call $exit (i32.const 6))))
    (if (i32.ne (call $register (i32.const -8) (i32.const 4) (i32.const 0)) (i32.const -5)) (then (call $exit (i32.const 7))))
    (br_if $l (i64.lt_u (call $now) (local.get $end))))
  (call $exit (i32.const 0)))
