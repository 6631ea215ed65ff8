;; Holds no capabilities: every handle it tries, including the first one a
;; task could be granted, must be refused with INVALID_HANDLE (-1).
(func (export "_start")
  (if (i32.ne (call $send (i32.const 1) (i32.const 0) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 1))))
  (if (i32.ne (call $send (i32.const 0x12345) (i32.const 0) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 2))))
  (if (i32.ne (call $send (i32.const -7) (i32.const 0) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 3))))
  (if (i32.ne (call $call (i32.const 1) (i32.const 0) (i32.const 4) (i32.const 64) (i32.const 4)) (i32.const -1)) (then (call $exit (i32.const 4))))
  (if (i32.ne (call $notify (i32.const 2) (i64.const 1)) (i32.const -1)) (then (call $exit (i32.const 5))))
  (call $exit (i32.const 0)))
