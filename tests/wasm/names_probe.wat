;; Started by init with the namespace `sysinfo` (`cargo xtask run --grant
;; sysinfo`): it may look sysinfo up, not tcp (whether or not the machine
;; has a network), and may serve no system name. Exits 0, or the failed step.
(data (i32.const 0) "tcp")
(data (i32.const 16) "sysinfo")
(data (i32.const 32) "fs")
(func (export "_start")
  (if (i32.le_s (call $lookup (i32.const 16) (i32.const 7)) (i32.const 0)) (then (call $exit (i32.const 1))))
  (if (i32.ne (call $lookup (i32.const 0) (i32.const 3)) (i32.const -2)) (then (call $exit (i32.const 2))))
  (if (i32.ne (call $register (i32.const 0) (i32.const 3) (i32.const 0)) (i32.const -2)) (then (call $exit (i32.const 3))))
  (if (i32.ne (call $register (i32.const 32) (i32.const 2) (i32.const 0)) (i32.const -2)) (then (call $exit (i32.const 4))))
  (call $exit (i32.const 0)))
