;; Imports and helpers shared by the test programs (not a module on its
;; own: the harness wraps each program as `(module <prelude> <program>)`).
;; Memory layout the programs follow: names at 0, RecvInfo at 512
;; (kind 512, len 516, badge 520, reply_token 524, bits 528), receive
;; buffer at 1024, send buffer at 2048, reply buffer at 3072.
  (import "wasmos" "ipc_send" (func $send (param i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_recv" (func $recv (param i32 i32 i32 i32 i64) (result i32)))
  (import "wasmos" "ipc_call" (func $call (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_call_timeout" (func $call_timeout (param i32 i32 i32 i32 i32 i64) (result i32)))
  (import "wasmos" "ipc_reply" (func $reply (param i32 i32 i32) (result i32)))
  (import "wasmos" "task_spawn" (func $spawn (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "task_spawn_ns" (func $spawn_ns (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "wasmos" "task_exit" (func $exit (param i32)))
  (import "wasmos" "task_kill" (func $kill (param i32) (result i32)))
  (import "wasmos" "cap_mint" (func $mint (param i32 i32 i32) (result i32)))
  (import "wasmos" "service_register" (func $register (param i32 i32 i32) (result i32)))
  (import "wasmos" "service_lookup" (func $lookup (param i32 i32) (result i32)))
  (import "wasmos" "sleep_ns" (func $sleep (param i64) (result i32)))
  (import "wasmos" "time_now_ns" (func $now (result i64)))
  (import "wasmos" "console_write" (func $print (param i32 i32) (result i32)))
  (import "wasmos" "core_id" (func $core_id (result i32)))
  (import "wasmos" "core_count" (func $core_count (result i32)))
  (import "wasmos" "notify" (func $notify (param i32 i64) (result i32)))
  (import "wasmos" "handle_close" (func $close (param i32) (result i32)))
  (import "wasmos" "ipc_grant" (func $grant (param i32 i32) (result i32)))
  (import "wasmos" "boot_file" (func $boot_file (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Looks up a service whose name is at [ptr, ptr+len), retrying until it
  ;; is registered.
  (func $lookup_wait (param $ptr i32) (param $len i32) (result i32) (local $h i32)
    (block $found (loop $again
      (local.set $h (call $lookup (local.get $ptr) (local.get $len)))
      (br_if $found (i32.gt_s (local.get $h) (i32.const 0)))
      (drop (call $sleep (i64.const 100000)))
      (br $again)))
    (local.get $h))
