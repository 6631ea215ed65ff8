//! State shared by all cores: the engine, the per-core rings, the directory
//! of live tasks, the name service and counters.
//!
//! Everything here is either immutable after start-up, atomic, or behind a
//! short spin lock taken off the message fast path (spawn, exit, lookup).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use spin::Mutex;
use wasmi::Module;
use wasmos_ipc::abi::Status;
use wasmos_ipc::caps::Cap;
use wasmos_ipc::directory::Directory;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::names::Namespace;
use wasmos_ipc::ring::{Full, Mailbox, PushOutcome};

use crate::compiler::Compiler;
use crate::envelope::{Envelope, SpawnRequest, TaskExit};
use crate::platform::Platform;

/// Exits of kernel-started tasks remembered for [`System::exit_of`] (the
/// oldest are forgotten first).
pub const REMEMBERED_EXITS: usize = 4096;

/// Directory slots kept beyond [`Config::max_tasks`] for the platform's
/// native services (which the task limit does not count).
pub const SERVICE_SLOTS: usize = 64;

/// Tunables, with the defaults the kernel uses.
#[derive(Debug, Clone)]
pub struct Config {
    /// Fuel (roughly, Wasm instructions) a task may use before it is
    /// suspended and the next task runs. The interpreter cannot be
    /// interrupted mid-slice (an IPI only wakes a halted core), so this is
    /// also how long a reply can wait behind a busy task: 20,000 keeps a
    /// client/server pair at about a third of its throughput beside a CPU
    /// hog on both cores (the `hostile::healthy_throughput` test; 200,000
    /// left it 5%), for about 1% of a compute-bound task's time.
    pub fuel_slice: u64,
    /// Largest linear memory a task may grow to, in bytes.
    pub max_memory_bytes: usize,
    /// Capabilities a task may hold.
    pub max_handles: usize,
    /// Envelopes each core's ring holds before senders get WOULD_BLOCK.
    pub ring_capacity: usize,
    /// Wasm call-stack depth before a task traps with a stack overflow.
    pub max_recursion_depth: usize,
    /// Linear memory all tasks together may hold (protects the kernel heap).
    pub total_memory_bytes: usize,
    /// Live tasks in the whole system.
    pub max_tasks: usize,
    /// Live children one task may have.
    pub max_children: u32,
    /// How deep same-core `ipc_call` hand-offs may nest (a callee that
    /// calls a third task on the core hands off again, up to this depth;
    /// beyond it calls go through the ready queue). 0 = never hand off.
    pub handoff_depth: usize,
    /// Of [`Config::total_memory_bytes`], how much only tasks the kernel
    /// started itself (system servers, init) may use: ordinary tasks
    /// together stop below it, so they cannot keep a system server from
    /// instantiating or growing.
    pub system_memory_reserve: usize,
    /// Bytes of one-way items (messages, grants) one task may have sent
    /// and not yet received by anyone ([`QUEUED_ITEM_OVERHEAD`] plus the
    /// payload each). Over it, sends are `WOULD_BLOCK` until receivers
    /// catch up.
    pub max_queued_bytes: usize,
    /// Bytes of one-way items queued in the whole system (every inbox and
    /// ring). Over it, sends are `NO_MEMORY`.
    pub total_queued_bytes: usize,
    /// Of [`Config::total_queued_bytes`], the part only the kernel's own
    /// tasks and services may fill.
    pub system_queue_reserve: usize,
    /// Names registered in the name service, in the whole system; the
    /// last [`SYSTEM_NAMES`] of them only for the kernel's own tasks and
    /// services.
    pub max_names: usize,
    /// Heap bytes compiled modules may hold, estimated from their binaries'
    /// sizes (`compiler.rs`). Over it, an ordinary task spawning a binary
    /// not compiled yet gets `NO_MEMORY`; what the kernel and its own tasks
    /// compile is counted but never refused.
    pub compiled_bytes: usize,
}

impl Config {
    /// The default configuration with every budget of kernel memory scaled
    /// to a kernel heap of `heap_bytes` (`quota::heap_shares`).
    pub fn for_heap(heap_bytes: usize) -> Config {
        let default = Config::default();
        let total_memory_bytes = crate::quota::heap_shares::wasm(heap_bytes);
        let system_memory_reserve = (total_memory_bytes / 4).min(default.system_memory_reserve);
        let total_queued_bytes = crate::quota::heap_shares::queued(heap_bytes);
        let system_queue_reserve = (total_queued_bytes / 4).min(default.system_queue_reserve);
        Config {
            total_memory_bytes,
            system_memory_reserve,
            max_memory_bytes: default.max_memory_bytes.min(total_memory_bytes - system_memory_reserve),
            total_queued_bytes,
            system_queue_reserve,
            max_queued_bytes: default.max_queued_bytes.min(total_queued_bytes - system_queue_reserve),
            compiled_bytes: crate::quota::heap_shares::compiled(heap_bytes),
            ..default
        }
    }
}

/// Kernel bookkeeping charged for each queued one-way item on top of its
/// payload (the item, its place in an inbox or ring).
pub const QUEUED_ITEM_OVERHEAD: usize = 64;

/// Names of the name service kept for the kernel's own tasks and services
/// (see [`Config::max_names`]).
pub const SYSTEM_NAMES: usize = 64;

impl Default for Config {
    fn default() -> Self {
        Config {
            fuel_slice: 20_000,
            max_memory_bytes: 16 << 20,
            max_handles: 1024,
            ring_capacity: 1024,
            max_recursion_depth: 1024,
            total_memory_bytes: 64 << 20,
            max_tasks: 512,
            max_children: 64,
            handoff_depth: 4,
            system_memory_reserve: 16 << 20,
            max_queued_bytes: 1 << 20,
            total_queued_bytes: 16 << 20,
            system_queue_reserve: 4 << 20,
            max_names: 1024,
            compiled_bytes: 16 << 20,
        }
    }
}

/// A name in the name service: the capability a lookup copies, and the
/// task charged for the entry (`None`: the kernel). An entry goes when
/// either ends, so every name a task registered is returned with it.
#[derive(Clone, Copy)]
pub(crate) struct Service {
    pub cap: Cap,
    pub owner: Option<TaskId>,
}

/// Per-core counters, read by anyone.
#[derive(Default)]
pub struct CoreStats {
    pub delivered: AtomicU64,
    pub tasks: AtomicU64,
    pub switches: AtomicU64,
    /// Same-core calls that ran the callee inside the caller's host call.
    pub handoffs: AtomicU64,
}

pub struct System {
    pub(crate) platform: Arc<dyn Platform>,
    pub(crate) config: Config,
    pub(crate) rings: Vec<Mailbox<Envelope>>,
    /// Live tasks and services, without a lock: liveness and the count of
    /// one-way items (messages, grants) queued for each anywhere, in a ring
    /// on their way or in its inbox. Senders on every core reserve a place
    /// there before sending, so a task that does not receive holds at most
    /// `INBOX_CAPACITY` of them however many cores flood it; it gives the
    /// place back when it receives the item. Calls are not counted: each
    /// task has at most one call outstanding, so they are bounded by the
    /// number of tasks. The home core is part of the id.
    pub(crate) directory: Directory,
    pub(crate) services: Mutex<BTreeMap<String, Service>>,
    /// The task that owns console input (WASI stdin), if any: the first
    /// to read it, until it ends or closes fd 0 (`wasi::console`).
    pub(crate) stdin_owner: Mutex<Option<TaskId>>,
    /// Bytes of one-way items queued anywhere (see [`crate::quota::QueueCharge`]).
    pub(crate) queued: Arc<crate::quota::SharedBudget>,
    /// Exits of tasks started by the kernel (no parent task to tell).
    pub(crate) orphan_exits: Mutex<BTreeMap<TaskId, TaskExit>>,
    pub(crate) stats: Vec<CoreStats>,
    pub(crate) memory: Arc<crate::quota::SharedBudget>,
    /// Engines, compiled modules by content, and their budget.
    pub(crate) compiler: Mutex<Compiler>,
    /// How many engine generations have started (`Compiler::generation`),
    /// read without the lock by idle cores to drop a stale linker.
    pub(crate) generation: AtomicU64,
    /// Tasks ever accepted for start, and tasks ever ended.
    pub(crate) spawned: AtomicU64,
    pub(crate) reaped: AtomicU64,
    next_core: AtomicUsize,
    /// [`Config::handoff_depth`], changeable at run time (the benchmark
    /// measures the queued path by turning hand-offs off).
    handoff_depth: AtomicUsize,
}

impl System {
    pub fn new(cores: usize, config: Config, platform: Arc<dyn Platform>) -> System {
        let mut wasm = wasmi::Config::default();
        wasm.consume_fuel(true);
        // Eager: everything is compiled when the module is, before it runs.
        // Lazily compiled functions are charged fuel on their first call,
        // and a first call near the end of a slice then fails with an
        // out-of-fuel *error* that cannot be resumed (found when slices got
        // shorter: tasks died as "trap" at random).
        wasm.compilation_mode(wasmi::CompilationMode::Eager);
        wasm.set_max_recursion_depth(config.max_recursion_depth);
        System {
            platform,
            rings: (0..cores).map(|_| Mailbox::new(config.ring_capacity)).collect(),
            config: config.clone(),
            directory: Directory::new(config.max_tasks + SERVICE_SLOTS),
            services: Mutex::new(BTreeMap::new()),
            stdin_owner: Mutex::new(None),
            queued: Arc::new(crate::quota::SharedBudget::new(config.total_queued_bytes)),
            orphan_exits: Mutex::new(BTreeMap::new()),
            stats: (0..cores).map(|_| CoreStats::default()).collect(),
            memory: Arc::new(crate::quota::SharedBudget::new(config.total_memory_bytes)),
            compiler: Mutex::new(Compiler::new(wasm, config.compiled_bytes)),
            generation: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            reaped: AtomicU64::new(0),
            next_core: AtomicUsize::new(0),
            handoff_depth: AtomicUsize::new(config.handoff_depth),
        }
    }

    pub fn cores(&self) -> usize {
        self.rings.len()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How deep same-core hand-offs may nest now ([`Config::handoff_depth`]).
    pub fn handoff_depth(&self) -> usize {
        self.handoff_depth.load(Ordering::Relaxed)
    }

    /// Changes [`Config::handoff_depth`] for calls made from now on.
    pub fn set_handoff_depth(&self, depth: usize) {
        self.handoff_depth.store(depth, Ordering::Relaxed)
    }

    pub fn now_ns(&self) -> u64 {
        self.platform.now_ns()
    }

    /// Announces that `core` is about to sleep; `false` means work arrived
    /// and it must not (the protocol is in [`wasmos_ipc::ring`]).
    pub fn prepare_sleep(&self, core: usize) -> bool {
        self.rings[core].prepare_sleep()
    }

    /// `core` is awake again.
    pub fn woke(&self, core: usize) {
        self.rings[core].woke()
    }

    /// Envelopes accepted and refused (ring full) by `core`'s ring.
    pub fn ring_counters(&self, core: usize) -> (u64, u64) {
        self.rings[core].counters()
    }

    pub fn stats(&self, core: usize) -> &CoreStats {
        &self.stats[core]
    }

    /// The core a live task runs on.
    pub fn core_of(&self, id: TaskId) -> Option<usize> {
        self.directory.is_alive(id).then(|| id.core())
    }

    /// Reserves a place in `to`'s inbox for one one-way item and returns
    /// the core it lives on (see [`Directory::reserve`]).
    pub(crate) fn reserve(&self, to: TaskId) -> Result<usize, Status> {
        self.directory.reserve(to)
    }

    /// Gives back a reservation whose item was not sent (its ring was full).
    pub(crate) fn unreserve(&self, to: TaskId) {
        self.directory.unreserve(to)
    }

    /// Tasks ever started and tasks ever ended (leak checks: once the system
    /// is quiet, the difference is the number of live tasks).
    pub fn lifetime_counts(&self) -> (u64, u64) {
        (self.spawned.load(Ordering::Relaxed), self.reaped.load(Ordering::Relaxed))
    }

    /// Bytes of linear memory all tasks hold now.
    pub fn memory_in_use(&self) -> usize {
        self.memory.used()
    }

    /// The estimated heap bytes of compiled code alive now, in every
    /// engine generation (`compiler.rs`).
    pub fn compiled_in_use(&self) -> usize {
        self.compiler.lock().live_cost()
    }

    /// Bytes of one-way items queued now, in every inbox and ring (each
    /// charged [`QUEUED_ITEM_OVERHEAD`] plus its payload).
    pub fn queued_bytes(&self) -> usize {
        self.queued.used()
    }

    /// Whether `name` is registered in the name service now.
    pub fn has_service(&self, name: &str) -> bool {
        self.services.lock().contains_key(name)
    }

    /// Names registered in the name service now.
    pub fn service_count(&self) -> usize {
        self.services.lock().len()
    }

    pub fn task_count(&self) -> usize {
        self.directory.len()
    }

    /// How a task the kernel started ended, once it has.
    pub fn exit_of(&self, id: TaskId) -> Option<TaskExit> {
        self.orphan_exits.lock().get(&id).copied()
    }

    /// Picks a core: the hint if valid, round robin for `-1`; any other
    /// value is `INVALID_ARGUMENT`.
    pub(crate) fn choose_core(&self, hint: i32) -> Result<usize, Status> {
        match hint {
            -1 => Ok(self.next_core.fetch_add(1, Ordering::Relaxed) % self.cores()),
            h if h < 0 => Err(Status::InvalidArgument),
            h if (h as usize) < self.cores() => Ok(h as usize),
            _ => Err(Status::InvalidArgument),
        }
    }

    /// Validates and compiles a Wasm binary, and checks that everything it
    /// imports is something we provide. Compiled modules are cached by
    /// content and charged to a budget, in generations of engines
    /// (`compiler.rs` says why); a `bounded` compile (for an ordinary
    /// task) is `NO_MEMORY` past the budget.
    pub(crate) fn compile(&self, bytes: &[u8], bounded: bool) -> Result<Module, Status> {
        let hash = crate::compiler::fnv1a(bytes);
        let reservation = {
            let mut compiler = self.compiler.lock();
            if let Some(module) = compiler.cached(hash, bytes) {
                return Ok(module);
            }
            let reservation = compiler.reserve(hash, bytes.len(), bounded)?;
            self.generation.store(compiler.generation(), Ordering::Relaxed);
            reservation
        };
        // Outside the lock: compiling a large binary takes milliseconds.
        // The start function is moved to an export and run as a resumable
        // call (`start.rs`).
        let deferred = crate::start::defer(bytes).map_err(|_| Status::InvalidWasm)?;
        let module =
            Module::new(&reservation.engine, deferred.as_deref().unwrap_or(bytes)).map_err(|_| Status::InvalidWasm)?;
        if !crate::imports::known(&module) {
            return Err(Status::InvalidWasm);
        }
        self.compiler.lock().keep(reservation, bytes, &module);
        Ok(module)
    }

    /// Sends an envelope to another core's ring, waking it if it sleeps.
    /// A full ring hands the envelope back (`Err`) for the caller to retry
    /// or refuse: it is the caller's own item moved back, so boxing it (an
    /// allocation per message) to shrink the `Err` would buy nothing. The
    /// queue charge a one-way item carries made it larger than clippy's
    /// `result_large_err` bound.
    #[allow(clippy::result_large_err)]
    pub(crate) fn post(&self, core: usize, envelope: Envelope) -> Result<(), Envelope> {
        match self.rings[core].push(envelope) {
            Ok(PushOutcome::DeliveredWakeNeeded) => {
                self.platform.wake_core(core);
                Ok(())
            }
            Ok(PushOutcome::Delivered) => Ok(()),
            Err(Full(envelope)) => Err(envelope),
        }
    }

    /// Starts a task from a Wasm binary, from outside any task (the kernel's
    /// init, tests). Returns its id; [`System::exit_of`] reports its end.
    pub fn spawn(&self, bytes: &[u8], name: &str, core_hint: i32) -> Result<TaskId, Status> {
        self.spawn_with(bytes, name, core_hint, false)
    }

    /// Starts the init task: like [`System::spawn`], and it may read the
    /// boot bundle's files (`boot_file`) to start everything else.
    pub fn spawn_init(&self, bytes: &[u8]) -> Result<TaskId, Status> {
        self.spawn_with(bytes, "init", 0, true)
    }

    /// Like [`System::spawn`] with arguments for a WASI program; the task
    /// is named after `argv[0]`.
    pub fn spawn_args(&self, bytes: &[u8], argv: &[&str], core_hint: i32) -> Result<TaskId, Status> {
        self.spawn_in(bytes, argv, core_hint, Namespace::ALL)
    }

    /// Like [`System::spawn_args`], with a namespace narrower than every
    /// system name: how the hosted runtime starts the user's programs
    /// with only the services its `--grant` flag names.
    pub fn spawn_in(
        &self,
        bytes: &[u8],
        argv: &[&str],
        core_hint: i32,
        namespace: Namespace,
    ) -> Result<TaskId, Status> {
        let args: Vec<String> = argv.iter().map(|a| String::from(*a)).collect();
        self.spawn_request(bytes, args, core_hint, false, Vec::new(), namespace, Vec::new())
    }

    /// Like [`System::spawn_in`], with environment variables (`K=V`) for a
    /// WASI program, which it sees after the `WASMOS_*` ones.
    pub fn spawn_env(
        &self,
        bytes: &[u8],
        argv: &[&str],
        env: &[&str],
        core_hint: i32,
        namespace: Namespace,
    ) -> Result<TaskId, Status> {
        let args: Vec<String> = argv.iter().map(|a| String::from(*a)).collect();
        let env: Vec<String> = env.iter().map(|a| String::from(*a)).collect();
        self.spawn_request(bytes, args, core_hint, false, Vec::new(), namespace, env)
    }

    /// Like [`System::spawn_args`], handing the task send capabilities to
    /// `caps` (tasks or native services), which it finds at handles
    /// `1..=caps.len()`: how the kernel gives a server the only way to an
    /// unnamed device service (the file server its block device).
    pub fn spawn_with_caps(
        &self,
        bytes: &[u8],
        argv: &[&str],
        core_hint: i32,
        caps: &[TaskId],
    ) -> Result<TaskId, Status> {
        let args: Vec<String> = argv.iter().map(|a| String::from(*a)).collect();
        let send = wasmos_ipc::caps::Rights::SEND;
        let caps = caps.iter().map(|&target| Cap { target, badge: 0, rights: send }).collect();
        self.spawn_request(bytes, args, core_hint, false, caps, Namespace::ALL, Vec::new())
    }

    fn spawn_with(&self, bytes: &[u8], name: &str, core_hint: i32, init: bool) -> Result<TaskId, Status> {
        let args = alloc::vec![String::from(name)];
        self.spawn_request(bytes, args, core_hint, init, Vec::new(), Namespace::ALL, Vec::new())
    }

    #[allow(clippy::too_many_arguments)]
    fn spawn_request(
        &self,
        bytes: &[u8],
        args: Vec<String>,
        core_hint: i32,
        init: bool,
        caps: Vec<Cap>,
        namespace: Namespace,
        env: Vec<String>,
    ) -> Result<TaskId, Status> {
        if caps.len() > self.config.max_handles {
            return Err(Status::QuotaExceeded);
        }
        let module = self.compile(bytes, false)?;
        let id = self.admit(self.choose_core(core_hint)?)?;
        let name = args.first().cloned().unwrap_or_else(|| "task".into());
        self.start(SpawnRequest { id, name, module, caps, parent: None, init, namespace, args, env })?;
        Ok(id)
    }

    /// Starts a native service on `core` and registers it under `name` in
    /// the name service (clients get a send-only handle from
    /// `service_lookup`). `ALREADY_EXISTS` if the name is taken.
    pub fn start_native(
        &self,
        name: &str,
        core: usize,
        service: alloc::boxed::Box<dyn crate::service::NativeService>,
    ) -> Result<TaskId, Status> {
        self.start_native_as(Some(name), core, service)
    }

    /// Starts a native service with no name: only those it is handed to
    /// (by id, from Rust: another service) can reach it; no task can
    /// (a device driver that only the stack above it may talk to).
    pub fn start_native_unnamed(
        &self,
        core: usize,
        service: alloc::boxed::Box<dyn crate::service::NativeService>,
    ) -> Result<TaskId, Status> {
        self.start_native_as(None, core, service)
    }

    fn start_native_as(
        &self,
        name: Option<&str>,
        core: usize,
        service: alloc::boxed::Box<dyn crate::service::NativeService>,
    ) -> Result<TaskId, Status> {
        if core >= self.cores() {
            return Err(Status::InvalidArgument);
        }
        let id = {
            let mut services = self.services.lock();
            if name.is_some_and(|n| services.contains_key(n)) {
                return Err(Status::AlreadyExists);
            }
            let id = self.directory.insert(core)?;
            if let Some(name) = name {
                let cap = Cap { target: id, badge: 0, rights: wasmos_ipc::caps::Rights::ENDPOINT };
                services.insert(String::from(name), Service { cap, owner: None });
            }
            id
        };
        let start = crate::service::NativeStart { id, service };
        if self.post(core, Envelope::StartNative(Box::new(start))).is_err() {
            if let Some(name) = name {
                self.services.lock().remove(name);
            }
            self.directory.remove(id);
            return Err(Status::WouldBlock);
        }
        Ok(id)
    }

    /// Enters a task that will live on `core` in the directory and returns
    /// its id: `QUOTA_EXCEEDED` past [`Config::max_tasks`]. The caller
    /// then [`start`](System::start)s it, or gives the id back with
    /// `directory.remove` if it cannot.
    pub(crate) fn admit(&self, core: usize) -> Result<TaskId, Status> {
        if self.directory.len() >= self.config.max_tasks {
            return Err(Status::QuotaExceeded);
        }
        self.directory.insert(core)
    }

    /// Sends an admitted task to its core; on failure (`WOULD_BLOCK`, the
    /// ring is full) its directory entry is removed.
    pub(crate) fn start(&self, request: SpawnRequest) -> Result<(), Status> {
        let id = request.id;
        self.spawned.fetch_add(1, Ordering::Relaxed);
        if self.post(id.core(), Envelope::Spawn(Box::new(request))).is_err() {
            self.directory.remove(id);
            self.spawned.fetch_sub(1, Ordering::Relaxed);
            return Err(Status::WouldBlock);
        }
        Ok(())
    }
}
