;; Registers as "echo" and answers every call with its first word plus
;; one; a call carrying -1 is answered and stops it.
(data (i32.const 0) "echo")
(func (export "_start") (local $n i32)
  (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
  (loop $serve
    (local.set $n (call $recv (i32.const -1) (i32.const 1024) (i32.const 4096) (i32.const 512) (i64.const -1)))
    (if (i32.eq (i32.load (i32.const 1024)) (i32.const -1))
      (then
        (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (local.get $n)))
        (call $exit (i32.const 0))))
    (i32.store (i32.const 1024) (i32.add (i32.load (i32.const 1024)) (i32.const 1)))
    (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (local.get $n)))
    (br $serve)))
