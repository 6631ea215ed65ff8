/work/wt-lead/target-servers/release/deps/scopeguard-9d74f8514a9ef55c.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/work/wt-lead/target-servers/release/deps/libscopeguard-9d74f8514a9ef55c.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/work/wt-lead/target-servers/release/deps/libscopeguard-9d74f8514a9ef55c.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/scopeguard-1.2.0/src/lib.rs:
