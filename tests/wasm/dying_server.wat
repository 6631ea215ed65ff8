;; Registers as "echo", takes one call, and traps without answering.
(data (i32.const 0) "echo")
(func (export "_start")
  (drop (call $register (i32.const 0) (i32.const 4) (i32.const 0)))
  (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
  unreachable)
