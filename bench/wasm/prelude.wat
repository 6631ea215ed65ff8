;; Imports and helpers shared by the bench programs (not a module on its
;; own: `programs::module` wraps each program as `(module <prelude> <program>)`).
;; Parameters come as decimal argv strings (WASI args); timing samples are
;; kept as u64 nanoseconds and written at the end as one binary record on
;; the console: "WBS1", a u32 count, then the samples (the kernel's bench
;; mode and the hosted baseline capture the console of bench tasks).
;; Memory layout: 0..256 service name, 512 RecvInfo (kind 512, len 516,
;; badge 520, reply_token 524), 1024 receive buffer, 2048 send buffer,
;; 3072 reply buffer, 4088 argc/argv size, 4096 argv pointers, 8192 argv
;; strings, 65528 the record header, 65536.. the samples (at most 57344).
  (import "wasmos" "ipc_send" (func $send (param i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_recv" (func $recv (param i32 i32 i32 i32 i64) (result i32)))
  (import "wasmos" "ipc_call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_reply" (func $reply (param i32 i32 i32) (result i32)))
  (import "wasmos" "task_exit" (func $exit (param i32)))
  (import "wasmos" "service_register" (func $register (param i32 i32 i32) (result i32)))
  (import "wasmos" "service_lookup" (func $lookup (param i32 i32) (result i32)))
  (import "wasmos" "sleep_ns" (func $sleep (param i64) (result i32)))
  (import "wasmos" "time_now_ns" (func $now (result i64)))
  (import "wasmos" "console_write" (func $print (param i32 i32) (result i32)))
  (import "wasmos" "core_id" (func $core_id (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (memory (export "memory") 8)
  (func $args_load
    (drop (call $args_sizes_get (i32.const 4088) (i32.const 4092)))
    (drop (call $args_get (i32.const 4096) (i32.const 8192))))
  ;; argv[i] read as a decimal number.
  (func $arg_num (param $i i32) (result i32) (local $p i32) (local $n i32) (local $d i32)
    (local.set $p (i32.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 2)))))
    (block $done (loop $digits
      (local.set $d (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
      (br_if $done (i32.gt_u (local.get $d) (i32.const 9)))
      (local.set $n (i32.add (i32.mul (local.get $n) (i32.const 10)) (local.get $d)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $digits)))
    (local.get $n))
  ;; Copies argv[i] to address 0 (the service name); returns its length.
  (func $arg_name (param $i i32) (result i32) (local $p i32) (local $n i32) (local $c i32)
    (local.set $p (i32.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 2)))))
    (block $done (loop $chars
      (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $n))))
      (br_if $done (i32.eqz (local.get $c)))
      (i32.store8 (local.get $n) (local.get $c))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $chars)))
    (local.get $n))
  ;; Looks up a service, retrying until it is registered.
  (func $lookup_wait (param $ptr i32) (param $len i32) (result i32) (local $h i32)
    (block $found (loop $again
      (local.set $h (call $lookup (local.get $ptr) (local.get $len)))
      (br_if $found (i32.gt_s (local.get $h) (i32.const 0)))
      (drop (call $sleep (i64.const 100000)))
      (br $again)))
    (local.get $h))
  (func $record (param $i i32) (param $ns i64)
    (i64.store (i32.add (i32.const 65536) (i32.shl (local.get $i) (i32.const 3))) (local.get $ns)))
  ;; Writes the sample record: "WBS1", count, the samples, in console
  ;; writes of at most 4096 bytes.
  (func $dump (param $count i32) (local $p i32) (local $end i32) (local $n i32)
    (i32.store (i32.const 65528) (i32.const 0x31534257))
    (i32.store (i32.const 65532) (local.get $count))
    (local.set $p (i32.const 65528))
    (local.set $end (i32.add (i32.const 65536) (i32.shl (local.get $count) (i32.const 3))))
    (block $done (loop $chunks
      (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
      (local.set $n (i32.sub (local.get $end) (local.get $p)))
      (if (i32.gt_u (local.get $n) (i32.const 4096)) (then (local.set $n (i32.const 4096))))
      (drop (call $print (local.get $p) (local.get $n)))
      (local.set $p (i32.add (local.get $p) (local.get $n)))
      (br $chunks))))
