;; Ten million host calls from one Wasm loop: `core_id` each iteration,
;; checked against the first answer (a task never moves between cores).
;; Exits with the number of calls made, or -1 at the first wrong answer.
;; In the kernel this runs on an AP's stack, which has a guard page: an
;; interpreter whose dispatch grew the native stack per executed
;; instruction (the soft-float tail-call bug) would run into it and stop
;; the machine with a double fault long before the end.
(func (export "_start") (local $i i32) (local $core i32)
  (local.set $core (call $core_id))
  (loop $l
    (if (i32.ne (call $core_id) (local.get $core))
      (then (call $exit (i32.const -1))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (i32.const 10000000))))
  (call $exit (local.get $i)))
