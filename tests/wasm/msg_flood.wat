;; Spawns a child that does not receive (the sleeper, embedded by the
;; harness: 500 ms) on its own core, floods it with 4 KiB messages until
;; refused, waits for its exit and exits with sent * 16 - status (or
;; -1000 + a spawn's status).
(data (i32.const 0) "sink")
(data (i32.const 8192) "$CHILD_BYTES")
(func (export "_start") (local $h i32) (local $n i32) (local $r i32)
  (drop (memory.grow (i32.const 1)))
  (local.set $h (call $spawn (i32.const 8192) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 4) (call $core_id) (i32.const 0) (i32.const 0)))
  (if (i32.lt_s (local.get $h) (i32.const 0)) (then (call $exit (i32.add (i32.const -1000) (local.get $h)))))
  (loop $l
    (local.set $r (call $send (local.get $h) (i32.const 65536) (i32.const 4096)))
    (if (i32.eqz (local.get $r)) (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $l))))
  (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
  (call $exit (i32.sub (i32.mul (local.get $n) (i32.const 16)) (local.get $r))))
