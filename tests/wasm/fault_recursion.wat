;; Recurses until the call stack is exhausted.
(func $f (call $f))
(func (export "_start") (call $f))
