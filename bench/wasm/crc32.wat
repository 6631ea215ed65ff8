;; argv: count, bytes, expected CRC (decimal). CRC-32 (IEEE 802.3,
;; reflected, polynomial 0xEDB88320), table-driven, one byte at a time,
;; over a fixed buffer of `bytes` bytes; each sample times one whole pass.
;; The same algorithm, table and buffer as the native program
;; (`kernel/src/native/programs.rs`, `crc32`) and the reference
;; (`wasmos_bench::workloads::crc32_reference`). Exits 1 if a pass does
;; not give the expected CRC. Memory: the table at 16384 (1 KiB), the
;; buffer at 20480 (at most 45048 bytes, up to the record header).
(func $table (local $n i32) (local $c i32) (local $k i32)
  (loop $entries
    (local.set $c (local.get $n))
    (local.set $k (i32.const 8))
    (loop $bits
      (local.set $c
        (if (result i32) (i32.and (local.get $c) (i32.const 1))
          (then (i32.xor (i32.shr_u (local.get $c) (i32.const 1)) (i32.const 0xEDB88320)))
          (else (i32.shr_u (local.get $c) (i32.const 1)))))
      (local.set $k (i32.sub (local.get $k) (i32.const 1)))
      (br_if $bits (local.get $k)))
    (i32.store offset=16384 (i32.shl (local.get $n) (i32.const 2)) (local.get $c))
    (local.set $n (i32.add (local.get $n) (i32.const 1)))
    (br_if $entries (i32.lt_u (local.get $n) (i32.const 256)))))
;; The buffer: the top byte of each step of the LCG x = x * 1664525 + 1013904223, from x = 1.
(func $fill (param $len i32) (local $i i32) (local $x i32)
  (local.set $x (i32.const 1))
  (loop $bytes
    (local.set $x (i32.add (i32.mul (local.get $x) (i32.const 1664525)) (i32.const 1013904223)))
    (i32.store8 offset=20480 (local.get $i) (i32.shr_u (local.get $x) (i32.const 24)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $bytes (i32.lt_u (local.get $i) (local.get $len)))))
(func $crc (param $len i32) (result i32) (local $c i32) (local $p i32) (local $end i32)
  (local.set $c (i32.const -1))
  (local.set $end (local.get $len))
  (loop $bytes
    (local.set $c
      (i32.xor
        (i32.load offset=16384
          (i32.shl (i32.and (i32.xor (local.get $c) (i32.load8_u offset=20480 (local.get $p))) (i32.const 255)) (i32.const 2)))
        (i32.shr_u (local.get $c) (i32.const 8))))
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (br_if $bytes (i32.lt_u (local.get $p) (local.get $end))))
  (i32.xor (local.get $c) (i32.const -1)))
(func (export "_start") (local $i i32) (local $n i32) (local $len i32) (local $want i32) (local $t i64) (local $c i32)
  (call $args_load)
  (local.set $n (call $arg_num (i32.const 1)))
  (local.set $len (call $arg_num (i32.const 2)))
  (local.set $want (call $arg_num (i32.const 3)))
  (if (i32.or (i32.eqz (local.get $len)) (i32.gt_u (local.get $len) (i32.const 45048)))
    (then (call $exit (i32.const 2))))
  (call $table)
  (call $fill (local.get $len))
  (loop $l
    (local.set $t (call $now))
    (local.set $c (call $crc (local.get $len)))
    (call $record (local.get $i) (i64.sub (call $now) (local.get $t)))
    (if (i32.ne (local.get $c) (local.get $want))
      (then (call $exit (i32.const 1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (call $dump (local.get $n))
  (call $exit (i32.const 0)))
