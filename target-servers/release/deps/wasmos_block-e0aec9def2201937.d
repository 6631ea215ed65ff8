/work/wt-lead/target-servers/release/deps/wasmos_block-e0aec9def2201937.d: block/src/lib.rs block/src/file.rs

/work/wt-lead/target-servers/release/deps/libwasmos_block-e0aec9def2201937.rlib: block/src/lib.rs block/src/file.rs

/work/wt-lead/target-servers/release/deps/libwasmos_block-e0aec9def2201937.rmeta: block/src/lib.rs block/src/file.rs

block/src/lib.rs:
block/src/file.rs:
