/work/wt-lead/target-servers/release/deps/wasmos_ipc-b721de6328ababf4.d: /work/wt-lead/ipc/src/lib.rs /work/wt-lead/ipc/src/abi.rs /work/wt-lead/ipc/src/block.rs /work/wt-lead/ipc/src/caps.rs /work/wt-lead/ipc/src/directory.rs /work/wt-lead/ipc/src/fs.rs /work/wt-lead/ipc/src/ids.rs /work/wt-lead/ipc/src/message.rs /work/wt-lead/ipc/src/names.rs /work/wt-lead/ipc/src/net.rs /work/wt-lead/ipc/src/ring.rs /work/wt-lead/ipc/src/sysinfo.rs

/work/wt-lead/target-servers/release/deps/libwasmos_ipc-b721de6328ababf4.rlib: /work/wt-lead/ipc/src/lib.rs /work/wt-lead/ipc/src/abi.rs /work/wt-lead/ipc/src/block.rs /work/wt-lead/ipc/src/caps.rs /work/wt-lead/ipc/src/directory.rs /work/wt-lead/ipc/src/fs.rs /work/wt-lead/ipc/src/ids.rs /work/wt-lead/ipc/src/message.rs /work/wt-lead/ipc/src/names.rs /work/wt-lead/ipc/src/net.rs /work/wt-lead/ipc/src/ring.rs /work/wt-lead/ipc/src/sysinfo.rs

/work/wt-lead/target-servers/release/deps/libwasmos_ipc-b721de6328ababf4.rmeta: /work/wt-lead/ipc/src/lib.rs /work/wt-lead/ipc/src/abi.rs /work/wt-lead/ipc/src/block.rs /work/wt-lead/ipc/src/caps.rs /work/wt-lead/ipc/src/directory.rs /work/wt-lead/ipc/src/fs.rs /work/wt-lead/ipc/src/ids.rs /work/wt-lead/ipc/src/message.rs /work/wt-lead/ipc/src/names.rs /work/wt-lead/ipc/src/net.rs /work/wt-lead/ipc/src/ring.rs /work/wt-lead/ipc/src/sysinfo.rs

/work/wt-lead/ipc/src/lib.rs:
/work/wt-lead/ipc/src/abi.rs:
/work/wt-lead/ipc/src/block.rs:
/work/wt-lead/ipc/src/caps.rs:
/work/wt-lead/ipc/src/directory.rs:
/work/wt-lead/ipc/src/fs.rs:
/work/wt-lead/ipc/src/ids.rs:
/work/wt-lead/ipc/src/message.rs:
/work/wt-lead/ipc/src/names.rs:
/work/wt-lead/ipc/src/net.rs:
/work/wt-lead/ipc/src/ring.rs:
/work/wt-lead/ipc/src/sysinfo.rs:
