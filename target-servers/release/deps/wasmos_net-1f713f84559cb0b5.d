/work/wt-lead/target-servers/release/deps/wasmos_net-1f713f84559cb0b5.d: net/src/lib.rs net/src/service.rs net/src/host.rs

/work/wt-lead/target-servers/release/deps/libwasmos_net-1f713f84559cb0b5.rlib: net/src/lib.rs net/src/service.rs net/src/host.rs

/work/wt-lead/target-servers/release/deps/libwasmos_net-1f713f84559cb0b5.rmeta: net/src/lib.rs net/src/service.rs net/src/host.rs

net/src/lib.rs:
net/src/service.rs:
net/src/host.rs:
