;; Spawn time: a task that ends at once (no WASI, one page of memory).
(memory (export "memory") 1)
(func (export "_start"))
