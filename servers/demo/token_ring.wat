;; Token ring: one copy runs on every core. Copy k registers "ring<kk>",
;; finds copy k+1, and forwards every token it receives to it. Copy 0
;; starts the token and, after 1000 laps, prints the average time per hop
;; and sends a stop token around the ring. It shows messages crossing
;; every core, each hop one ipc_send into another core's ring (and an IPI
;; when that core sleeps).
(module
  (import "wasmos" "ipc_send" (func $send (param i32 i32 i32) (result i32)))
  (import "wasmos" "ipc_recv" (func $recv (param i32 i32 i32 i32 i64) (result i32)))
  (import "wasmos" "service_register" (func $register (param i32 i32 i32) (result i32)))
  (import "wasmos" "service_lookup" (func $lookup (param i32 i32) (result i32)))
  (import "wasmos" "sleep_ns" (func $sleep (param i64) (result i32)))
  (import "wasmos" "time_now_ns" (func $now (result i64)))
  (import "wasmos" "console_write" (func $print (param i32 i32) (result i32)))
  (import "wasmos" "core_id" (func $core_id (result i32)))
  (import "wasmos" "core_count" (func $core_count (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "ring00")
  (data (i32.const 16) "ring01")
  (data (i32.const 64) "token ring: 1000 laps over ")
  (data (i32.const 128) " cores, ")
  (data (i32.const 144) " ns per hop\0a")

  ;; Writes "ring<kk>" for core k at ptr.
  (func $name (param $ptr i32) (param $k i32)
    (i32.store (local.get $ptr) (i32.load (i32.const 0)))
    (i32.store8 (i32.add (local.get $ptr) (i32.const 4)) (i32.add (i32.const 48) (i32.div_u (local.get $k) (i32.const 10))))
    (i32.store8 (i32.add (local.get $ptr) (i32.const 5)) (i32.add (i32.const 48) (i32.rem_u (local.get $k) (i32.const 10)))))

  ;; Writes the decimal digits of v at ptr, returns their count.
  (func $itoa (param $v i64) (param $ptr i32) (result i32) (local $n i32) (local $i i32) (local $t i32)
    (loop $digits
      (i32.store8 (i32.add (i32.const 512) (local.get $n)) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digits (i64.ne (local.get $v) (i64.const 0))))
    (loop $reverse
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $ptr) (i32.sub (local.get $i) (i32.const 1)))
        (i32.load8_u (i32.add (i32.const 512) (i32.sub (local.get $n) (local.get $i)))))
      (br_if $reverse (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $n))

  (func (export "_start") (local $me i32) (local $n i32) (local $next i32) (local $token i32) (local $t0 i64) (local $len i32) (local $at i32)
    (local.set $me (call $core_id))
    (local.set $n (call $core_count))
    (call $name (i32.const 32) (local.get $me))
    (drop (call $register (i32.const 32) (i32.const 6) (i32.const 0)))
    (call $name (i32.const 48) (i32.rem_u (i32.add (local.get $me) (i32.const 1)) (local.get $n)))
    (block $found (loop $again
      (local.set $next (call $lookup (i32.const 48) (i32.const 6)))
      (br_if $found (i32.gt_s (local.get $next) (i32.const 0)))
      (drop (call $sleep (i64.const 1000000)))
      (br $again)))
    (if (i32.eqz (local.get $me)) (then
      (local.set $t0 (call $now))
      (i32.store (i32.const 256) (i32.const 0))
      (drop (call $send (local.get $next) (i32.const 256) (i32.const 4)))))
    (loop $serve
      (drop (call $recv (i32.const -1) (i32.const 256) (i32.const 4) (i32.const 0) (i64.const -1)))
      (local.set $token (i32.load (i32.const 256)))
      (if (i32.eq (local.get $token) (i32.const -1)) (then
        (if (i32.ne (local.get $me) (i32.const 0)) (then (drop (call $send (local.get $next) (i32.const 256) (i32.const 4)))))
        (return)))
      (if (i32.eqz (local.get $me)) (then
        (local.set $token (i32.add (local.get $token) (i32.const 1)))
        (if (i32.eq (local.get $token) (i32.const 1000)) (then
          ;; "token ring: 1000 laps over <n> cores, <t> ns per hop\n"
          (memory.copy (i32.const 1024) (i32.const 64) (i32.const 27))
          (local.set $at (i32.add (i32.const 1051) (call $itoa (i64.extend_i32_u (local.get $n)) (i32.const 1051))))
          (memory.copy (local.get $at) (i32.const 128) (i32.const 8))
          (local.set $at (i32.add (local.get $at) (i32.const 8)))
          (local.set $at (i32.add (local.get $at)
            (call $itoa (i64.div_u (i64.sub (call $now) (local.get $t0)) (i64.mul (i64.const 1000) (i64.extend_i32_u (local.get $n)))) (local.get $at))))
          (memory.copy (local.get $at) (i32.const 144) (i32.const 12))
          (drop (call $print (i32.const 1024) (i32.sub (i32.add (local.get $at) (i32.const 12)) (i32.const 1024))))
          (local.set $token (i32.const -1))))
        (i32.store (i32.const 256) (local.get $token))))
      (drop (call $send (local.get $next) (i32.const 256) (i32.const 4)))
      (br $serve)))
)
