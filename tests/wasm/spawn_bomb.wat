;; Spawns copies of a short-lived child (embedded below by the harness)
;; until refused. Exits with the number it started if the refusal was
;; QUOTA_EXCEEDED (-10), else 10000 + (the other status, negated).
(data (i32.const 0) "child")
(data (i32.const 4096) "$CHILD_BYTES")
(func (export "_start") (local $n i32) (local $r i32)
  (loop $again
    (local.set $r (call $spawn (i32.const 4096) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 5) (i32.const -1) (i32.const 0) (i32.const 0)))
    (if (i32.gt_s (local.get $r) (i32.const 0))
      (then (local.set $n (i32.add (local.get $n) (i32.const 1))) (br $again))))
  (if (i32.ne (local.get $r) (i32.const -10)) (then (call $exit (i32.sub (i32.const 10000) (local.get $r)))))
  (call $exit (local.get $n)))
