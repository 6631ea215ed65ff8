(func (export "_start") (drop (i32.div_s (i32.const 1) (i32.sub (i32.const 1) (i32.const 1)))))
