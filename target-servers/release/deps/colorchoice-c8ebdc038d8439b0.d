/work/wt-lead/target-servers/release/deps/colorchoice-c8ebdc038d8439b0.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/colorchoice-1.0.5/src/lib.rs

/work/wt-lead/target-servers/release/deps/libcolorchoice-c8ebdc038d8439b0.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/colorchoice-1.0.5/src/lib.rs

/work/wt-lead/target-servers/release/deps/libcolorchoice-c8ebdc038d8439b0.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/colorchoice-1.0.5/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/colorchoice-1.0.5/src/lib.rs:
