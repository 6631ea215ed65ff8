;; child: compile_churn
;; Starts compile_churn as an ordinary task (one the compile budget binds)
;; and exits with its exit code.
(data (i32.const 0) "churn")
(data (i32.const 8192) "$CHILD_BYTES")
(func (export "_start")
  (if (i32.lt_s (call $spawn (i32.const 8192) (i32.const $CHILD_LEN) (i32.const 0) (i32.const 5) (call $core_id) (i32.const 0) (i32.const 0)) (i32.const 0))
    (then (call $exit (i32.const -1))))
  (drop (call $recv (i32.const -1) (i32.const 1024) (i32.const 64) (i32.const 512) (i64.const -1)))
  (call $exit (i32.load (i32.const 528))))
