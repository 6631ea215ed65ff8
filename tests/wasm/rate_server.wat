;; Registers as "rate" and answers every call with its payload; ignores
;; other one-way messages (a flood), and stops (exit 0) on the one-way
;; message 0xFFFFFFFF. The server of the healthy workload beside hostile
;; tasks.
(data (i32.const 0) "rate")
(func (export "_start") (local $n i32)
  (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
  (loop $serve
    (local.set $n (call $recv (i32.const -1) (i32.const 1024) (i32.const 4096) (i32.const 512) (i64.const -1)))
    (if (i32.eq (i32.load (i32.const 512)) (i32.const 2))
      (then (drop (call $reply (i32.load (i32.const 524)) (i32.const 1024) (local.get $n))))
      (else (if (i32.eq (i32.load (i32.const 1024)) (i32.const -1)) (then (call $exit (i32.const 0))))))
    (br $serve)))
