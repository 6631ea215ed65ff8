/work/wt-lead/target-servers/release/deps/strsim-5bacc58e47df1a8f.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/strsim-0.11.1/src/lib.rs

/work/wt-lead/target-servers/release/deps/libstrsim-5bacc58e47df1a8f.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/strsim-0.11.1/src/lib.rs

/work/wt-lead/target-servers/release/deps/libstrsim-5bacc58e47df1a8f.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/strsim-0.11.1/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/strsim-0.11.1/src/lib.rs:
