;; Ends at once. Its AAAA is overwritten by its spawner, so that every
;; copy is a distinct binary the kernel must compile anew.
(data (i32.const 100) "AAAA")
(func (export "_start") (call $exit (i32.const 0)))
