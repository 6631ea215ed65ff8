//! init: the first task. The kernel starts it on core 0 with the right to
//! read the boot bundle; it reads `boot.cfg` and starts every program
//! listed in `spawn=`:
//!
//! ```text
//! spawn=token_ring.wasm@all,myapp.wasm,server.wasm@3
//! ```
//!
//! `name.wasm` runs on a core the kernel picks, `@k` on core k, `@all` one
//! copy per core, `*n` n copies on cores 0, 1, ... n-1 (round the cores
//! again past the last: `webapi.wasm*4` is four web server workers, which
//! share their port). The bundle file `args/name.wasm` gives a program its
//! arguments, each one ended by a NUL byte, taken exactly as they are
//! (spaces, quotes and all; WASI programs see them as argv). The bundle
//! file `env/name.wasm` gives it environment variables the same way: `K=V`
//! entries, each ended by a NUL (WASI programs see them after `WASMOS_*`).
//!
//! Namespaces: `names.webapi.wasm=tcp,sysinfo` gives that program the
//! system services it may look up (docs/ABI.md, "Names and namespaces");
//! a program with no `names.` line gets none. Before the first program
//! granted `fs`, init waits (at most 3 s) for the file server to register
//! it, so that a WASI program finds its `/disk`.
//!
//! Supervision: `restart=webapi.wasm,other.wasm` names programs that
//! init starts again, each copy on its own core, when they fail
//! (non-zero exit or killed), after a back-off doubling from 100 ms to
//! 10 s (back to 100 ms once one has run for 30 s); it logs why each one
//! ended. A program that exits with 0 stays ended. With no `restart=`
//! program running, init exits once everything is started.

#![no_std]

use wasmos_sdk::{self as os, println};

/// Largest program init can start: the size of its static program
/// buffer, which lives in init's own linear memory for as long as init
/// runs (it supervises). `cargo xtask run --wasm` refuses larger files
/// (`xtask/src/build.rs`, `MAX_PROGRAM`, which must stay equal); README,
/// "Your own Wasm program", names it.
const MAX_PROGRAM: usize = 4 << 20;

/// Most arguments a program gets, argv[0] included (the SDK's
/// `spawn_args` also bounds their total length, to 1024 bytes).
const MAX_ARGS: usize = 32;

/// Most copies one `*n` starts.
const MAX_COPIES: u32 = 256;

/// Most programs (copies) init supervises: one per core of the largest
/// machine WasmOS boots on, and some.
const MAX_SUPERVISED: usize = 80;

/// A supervised program: where it runs and how it is doing.
#[derive(Clone, Copy)]
struct Supervised<'c> {
    file: &'c str,
    names: &'c str,
    core: Option<u32>,
    child: Option<os::Handle>,
    since: u64,
    backoff_ms: u64,
}

struct Buffers {
    config: [u8; 4096],
    args: [u8; 1024],
    env: [u8; 4096],
    program: [u8; MAX_PROGRAM],
}

static mut BUFFERS: Buffers = Buffers { config: [0; 4096], args: [0; 1024], env: [0; 4096], program: [0; MAX_PROGRAM] };

#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    // SAFETY: a Wasm task is single-threaded and `_start` runs once, so
    // this is the only reference to the buffers.
    // (`&raw mut` then a reborrow: a direct `&mut BUFFERS` is rejected for
    // `static mut` in edition 2024.)
    #[allow(clippy::deref_addrof)]
    let buffers = unsafe { &mut *(&raw mut BUFFERS) };
    let config = match os::boot_file("boot.cfg", &mut buffers.config) {
        Ok(n) => core::str::from_utf8(&buffers.config[..n]).unwrap_or(""),
        Err(e) => {
            println!("cannot read boot.cfg: {}", e.name());
            os::exit(1)
        }
    };
    let Some(list) = config.lines().rev().find_map(|l| l.trim().strip_prefix("spawn=")) else {
        println!("nothing to start (no spawn= in boot.cfg)");
        return;
    };
    let restart_list = config.lines().rev().find_map(|l| l.trim().strip_prefix("restart=")).unwrap_or("");
    let restartable = |file: &str| restart_list.split(',').map(str::trim).any(|r| r == file);
    let mut supervised: [Option<Supervised<'_>>; MAX_SUPERVISED] = [None; MAX_SUPERVISED];
    let mut failures = 0;
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((file, cores)) = placement(item) else {
            println!("bad placement in {item:?}");
            failures += 1;
            continue;
        };
        for core in cores {
            let names = namespace_of(config, file);
            match start(&mut buffers.program, &mut buffers.args, &mut buffers.env, file, names, core) {
                Ok(child) if restartable(file) => match supervised.iter_mut().find(|s| s.is_none()) {
                    Some(slot) => {
                        *slot = Some(Supervised {
                            file,
                            names,
                            core,
                            child: Some(child),
                            since: os::now_ns(),
                            backoff_ms: 0,
                        })
                    }
                    None => println!("not supervising {file}: more than {MAX_SUPERVISED} programs"),
                },
                Ok(_) => {}
                Err(()) => failures += 1,
            }
        }
    }
    if supervised.iter().all(Option::is_none) {
        os::exit(failures)
    }
    supervise(&mut buffers.program, &mut buffers.args, &mut buffers.env, &mut supervised)
}

/// A `spawn=` item's file and the cores its copies go to (`None`: the
/// kernel picks); `None` if the placement is not one of `@k`, `@all`,
/// `*n` (n from 1 to [`MAX_COPIES`]).
fn placement(item: &str) -> Option<(&str, impl Iterator<Item = Option<u32>>)> {
    let cores = os::core_count().max(1);
    let (file, first, copies) = match (item.split_once('@'), item.split_once('*')) {
        (Some((file, "all")), _) => (file, Some(0), cores),
        (Some((file, k)), _) => (file, Some(k.parse().ok()?), 1),
        (None, Some((file, n))) => (file, Some(0), n.parse().ok().filter(|n| (1..=MAX_COPIES).contains(n))?),
        (None, None) => (item, None, 1),
    };
    Some((file, (0..copies).map(move |i| first.map(|k| if copies > 1 { i % cores } else { k }))))
}

/// The system services `boot.cfg` gives `file` (`names.<file>=...`; the
/// last such line counts), comma-separated; none without a line.
fn namespace_of<'c>(config: &'c str, file: &str) -> &'c str {
    config
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("names.")?.strip_prefix(file)?.strip_prefix('='))
        .unwrap_or("")
}

/// Reads `file` from the bundle and starts it with its arguments and the
/// namespace `names` on `core`; says so, or why not.
fn start(
    program: &mut [u8],
    args: &mut [u8],
    env: &mut [u8],
    file: &str,
    names: &str,
    core: Option<u32>,
) -> Result<os::Handle, ()> {
    let name = file.trim_end_matches(".wasm");
    let len = match os::boot_file(file, program) {
        Ok(len) => len,
        Err(os::Status::TooLarge) => {
            println!("cannot start {name}: {file} is larger than {} MiB, the most init starts", MAX_PROGRAM >> 20);
            return Err(());
        }
        Err(e) => {
            println!("cannot read {file}: {}", e.name());
            return Err(());
        }
    };
    let wasm = &program[..len];
    let mut argv = [""; MAX_ARGS];
    argv[0] = name;
    let argc = match program_args(file, args, &mut argv[1..]) {
        Ok(n) => 1 + n,
        Err(why) => {
            println!("cannot start {name}: its arguments (args/{file}): {why}");
            return Err(());
        }
    };
    let env = match bundle_file("env/", file, env) {
        Ok(env) => env,
        Err(why) => {
            println!("cannot start {name}: its environment (env/{file}): {why}");
            return Err(());
        }
    };
    if names.split(',').any(|n| n.trim() == os::fs::SERVICE) {
        wait_for_fs();
    }
    let spawned = match env {
        [] => os::spawn_args_in(wasm, &argv[..argc], core, &[], names),
        env => os::spawn_args_env(wasm, &argv[..argc], core, &[], names, env),
    };
    match spawned {
        Ok(child) => {
            match names.trim() {
                "" => println!("started {name} on {}", Placement(core)),
                names => println!("started {name} on {} with services {names}", Placement(core)),
            }
            Ok(child)
        }
        Err(e) => {
            println!("cannot start {name} on {}: {}", Placement(core), e.name());
            Err(())
        }
    }
}

/// Waits for supervised children to end; starts the failed ones again
/// with back-off. Never returns while one is supervised.
fn supervise(program: &mut [u8], args: &mut [u8], env: &mut [u8], supervised: &mut [Option<Supervised<'_>>]) -> ! {
    loop {
        if supervised.iter().flatten().all(|s| s.child.is_none()) {
            os::exit(0)
        }
        let mut msg = [0u8; 64];
        let Ok((info, _)) = os::recv(None, &mut msg, None) else { continue };
        if info.kind != os::Kind::ChildExit as u32 {
            continue;
        }
        let Some(task) = supervised.iter_mut().flatten().find(|s| s.child.is_some_and(|h| h.0 as u32 == info.badge))
        else {
            continue;
        };
        let _ = os::close(task.child.take().expect("found by its child"));
        let code = info.bits as u32 as i32;
        let reason = os::abi::ExitReason::from_u8((info.bits >> 32) as u8);
        let name = task.file.trim_end_matches(".wasm");
        if reason == Some(os::abi::ExitReason::Exited) && code == 0 {
            println!("{name} exited with code 0; not restarting it");
            continue;
        }
        let why = reason.map_or("unknown reason", |r| r.name());
        let now = os::now_ns();
        task.backoff_ms = if now.saturating_sub(task.since) > 30_000_000_000 {
            100
        } else {
            (task.backoff_ms * 2).clamp(100, 10_000)
        };
        println!("{name} ended ({why}, exit code {code}); restarting it in {} ms", task.backoff_ms);
        os::sleep_ns(task.backoff_ms * 1_000_000);
        let (file, names, core) = (task.file, task.names, task.core);
        task.since = os::now_ns();
        task.child = start(program, args, env, file, names, core).ok();
        if task.child.is_none() {
            println!("{name} could not be restarted; no longer supervised");
        }
    }
}

/// How long init waits for the file server before starting a program
/// granted `fs` (a machine without a disk has none).
const FS_WAIT_NS: u64 = 3_000_000_000;

/// A WASI program granted `fs` gets its `/disk` only if `fs` is registered
/// when it starts, and the file server mounts its disk while init starts
/// up: waits for the name (at most [`FS_WAIT_NS`], once).
fn wait_for_fs() {
    static WAITED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if WAITED.swap(true, core::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let until = os::now_ns().saturating_add(FS_WAIT_NS);
    while os::now_ns() < until {
        if let Ok(fs) = os::lookup(os::fs::SERVICE) {
            let _ = os::close(fs);
            return;
        }
        os::sleep_ns(10_000_000);
    }
}

/// Reads the bundle file `<dir><file>` into `buf`; no file: nothing.
fn bundle_file<'b>(dir: &str, file: &str, buf: &'b mut [u8]) -> Result<&'b [u8], &'static str> {
    let mut path = [0u8; 256];
    let key = dir.as_bytes();
    if key.len() + file.len() > path.len() {
        return Err("file name too long");
    }
    path[..key.len()].copy_from_slice(key);
    path[key.len()..key.len() + file.len()].copy_from_slice(file.as_bytes());
    let path = core::str::from_utf8(&path[..key.len() + file.len()]).map_err(|_| "file name not UTF-8")?;
    match os::boot_file(path, buf) {
        Ok(len) => Ok(&buf[..len]),
        Err(os::Status::NotFound) => Ok(&[]),
        Err(e) => Err(e.name()),
    }
}

/// Reads `args/<file>` (each argument ended by a NUL) into `buf` and
/// points `out` at its arguments; returns how many. No file: none.
fn program_args<'b>(file: &str, buf: &'b mut [u8], out: &mut [&'b str]) -> Result<usize, &'static str> {
    let text = core::str::from_utf8(bundle_file("args/", file, buf)?).map_err(|_| "not UTF-8")?;
    let Some(text) = text.strip_suffix('\0') else {
        return if text.is_empty() { Ok(0) } else { Err("last argument not ended by NUL") };
    };
    let mut n = 0;
    for arg in text.split('\0') {
        *out.get_mut(n).ok_or("too many arguments")? = arg;
        n += 1;
    }
    Ok(n)
}

struct Placement(Option<u32>);

impl core::fmt::Display for Placement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(core) => write!(f, "core {core}"),
            None => f.write_str("any core"),
        }
    }
}
