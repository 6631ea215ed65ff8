;; Sleeps half a second and exits 0.
(func (export "_start") (drop (call $sleep (i64.const 500000000))))
