/work/wt-lead/target-servers/release/deps/wasmos_sched-ad892c12929d7818.d: /work/wt-lead/sched/src/lib.rs /work/wt-lead/sched/src/envelope.rs /work/wt-lead/sched/src/host.rs /work/wt-lead/sched/src/imports.rs /work/wt-lead/sched/src/percore.rs /work/wt-lead/sched/src/platform.rs /work/wt-lead/sched/src/quota.rs /work/wt-lead/sched/src/scheduler.rs /work/wt-lead/sched/src/service.rs /work/wt-lead/sched/src/system.rs /work/wt-lead/sched/src/task.rs /work/wt-lead/sched/src/threads.rs /work/wt-lead/sched/src/wasi.rs

/work/wt-lead/target-servers/release/deps/libwasmos_sched-ad892c12929d7818.rlib: /work/wt-lead/sched/src/lib.rs /work/wt-lead/sched/src/envelope.rs /work/wt-lead/sched/src/host.rs /work/wt-lead/sched/src/imports.rs /work/wt-lead/sched/src/percore.rs /work/wt-lead/sched/src/platform.rs /work/wt-lead/sched/src/quota.rs /work/wt-lead/sched/src/scheduler.rs /work/wt-lead/sched/src/service.rs /work/wt-lead/sched/src/system.rs /work/wt-lead/sched/src/task.rs /work/wt-lead/sched/src/threads.rs /work/wt-lead/sched/src/wasi.rs

/work/wt-lead/target-servers/release/deps/libwasmos_sched-ad892c12929d7818.rmeta: /work/wt-lead/sched/src/lib.rs /work/wt-lead/sched/src/envelope.rs /work/wt-lead/sched/src/host.rs /work/wt-lead/sched/src/imports.rs /work/wt-lead/sched/src/percore.rs /work/wt-lead/sched/src/platform.rs /work/wt-lead/sched/src/quota.rs /work/wt-lead/sched/src/scheduler.rs /work/wt-lead/sched/src/service.rs /work/wt-lead/sched/src/system.rs /work/wt-lead/sched/src/task.rs /work/wt-lead/sched/src/threads.rs /work/wt-lead/sched/src/wasi.rs

/work/wt-lead/sched/src/lib.rs:
/work/wt-lead/sched/src/envelope.rs:
/work/wt-lead/sched/src/host.rs:
/work/wt-lead/sched/src/imports.rs:
/work/wt-lead/sched/src/percore.rs:
/work/wt-lead/sched/src/platform.rs:
/work/wt-lead/sched/src/quota.rs:
/work/wt-lead/sched/src/scheduler.rs:
/work/wt-lead/sched/src/service.rs:
/work/wt-lead/sched/src/system.rs:
/work/wt-lead/sched/src/task.rs:
/work/wt-lead/sched/src/threads.rs:
/work/wt-lead/sched/src/wasi.rs:

# env-dep:CARGO_PKG_VERSION=0.1.0
