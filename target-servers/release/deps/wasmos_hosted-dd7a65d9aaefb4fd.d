/work/wt-lead/target-servers/release/deps/wasmos_hosted-dd7a65d9aaefb4fd.d: hosted/src/main.rs

/work/wt-lead/target-servers/release/deps/wasmos_hosted-dd7a65d9aaefb4fd: hosted/src/main.rs

hosted/src/main.rs:

# env-dep:CARGO_PKG_NAME=wasmos-hosted
