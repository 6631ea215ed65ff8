;; Prints one line and exits 7.
(data (i32.const 0) "hello from wasm")
(func (export "_start") (drop (call $print (i32.const 0) (i32.const 15))) (call $exit (i32.const 7)))
