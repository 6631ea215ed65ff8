;; Grows its memory 1 MiB at a time until refused, holds it for 1 s so
;; that other hogs compete for the shared budget, then exits with the
;; number of 64 KiB pages it held.
(func (export "_start") (local $pages i32)
  (block $refused (loop $grow
    (br_if $refused (i32.eq (memory.grow (i32.const 16)) (i32.const -1)))
    (br $grow)))
  (local.set $pages (memory.size))
  ;; Touch the last page: the memory must really be there.
  (i32.store (i32.sub (i32.mul (local.get $pages) (i32.const 65536)) (i32.const 4)) (i32.const 1))
  (drop (call $sleep (i64.const 1000000000)))
  (call $exit (local.get $pages)))
