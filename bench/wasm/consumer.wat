;; argv: service, total, batch. Registers the service, receives `total`
;; messages and records the time (ns since boot, so that consumers on
;; different cores share a time line) at its start and after every
;; `batch` messages.
(func (export "_start") (local $len i32) (local $total i32) (local $batch i32)
    (local $got i32) (local $k i32) (local $s i32)
  (call $args_load)
  (local.set $len (call $arg_name (i32.const 1)))
  (local.set $total (call $arg_num (i32.const 2)))
  (local.set $batch (call $arg_num (i32.const 3)))
  (drop (call $register (i32.const 0) (local.get $len) (i32.const 0)))
  (call $record (i32.const 0) (call $now))
  (local.set $s (i32.const 1))
  (loop $l
    (if (i32.lt_s (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 0) (i64.const -1)) (i32.const 0))
      (then (call $exit (i32.const 1))))
    (local.set $got (i32.add (local.get $got) (i32.const 1)))
    (local.set $k (i32.add (local.get $k) (i32.const 1)))
    (if (i32.eq (local.get $k) (local.get $batch))
      (then
        (call $record (local.get $s) (call $now))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (local.set $k (i32.const 0))))
    (br_if $l (i32.lt_u (local.get $got) (local.get $total))))
  (call $dump (local.get $s))
  (call $exit (i32.const 0)))
