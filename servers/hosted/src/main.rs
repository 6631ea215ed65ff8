//! `wasmos-hosted`: runs WasmOS programs on Linux.
//!
//! The same `wasmos-sched` code as the kernel, with a Linux [`Platform`]:
//! each core is an OS thread running a `CoreScheduler`
//! (`wasmos_sched::threads`); "halt until an IPI" is a condvar wait; the
//! clock is `Instant`; randomness /dev/urandom. What a program writes to
//! its stdout and stderr goes raw to ours, as under `wasmtime run`, so it
//! can sit in a pipeline; the log (`[core0 task name] exited with code 0`)
//! goes to stderr. Our stdin is the programs' console input (WASI fd 0,
//! `stdin.rs`), as COM1's input is in QEMU; its end is their end of input.
//! The programs are the very `.wasm` files the kernel boots. The services
//! the kernel provides natively are here too, over the host's facilities:
//! `sysinfo`, `tcp` over the host's sockets (`wasmos-net`'s `host`
//! backend), so `webapi.wasm` serves HTTP on Linux as it does in QEMU, and
//! with `--disk FILE` the block service over that file and the file server
//! `fs` (the same `fs.wasm` as in QEMU) on it.
//!
//! ```text
//! wasmos-hosted [--cores N] [--timeout SECS] [--disk FILE] prog.wasm[@core|@all|*copies] ...
//! ```
//! Exits when every started task has ended, with the first non-zero exit
//! code among them (like a shell running one program: `wasmos-hosted
//! prog.wasm` exits with prog's code; a killed task counts as 101), or
//! with 0 after `--timeout`. A task's death is reported on stderr as the
//! kernel reports it (`killed: ...`) and ends nothing else. With
//! `--restart` a program that fails (non-zero exit, killed) is started
//! again after a back-off that doubles from 100 ms to 10 s (reset once it
//! has run for 30 s), and only a clean exit (code 0) ends it: what init
//! does for `restart=` programs in QEMU.

#![forbid(unsafe_code)]

mod stdin;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::names::{Namespace, SYSTEM_SERVICES};
use wasmos_net::TcpService;
use wasmos_net::host::HostNet;
use wasmos_sched::threads::{Cores, Wakers};
use wasmos_sched::{Config, Platform, Stream, SysInfo, System, TaskExit};

#[derive(Parser)]
#[command(about = "Run WasmOS Wasm programs on Linux")]
struct Cli {
    /// Number of cores (OS threads).
    #[arg(long, default_value_t = 4)]
    cores: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Directory whose files WASI programs see, read-only, under `/`
    /// (the kernel serves the boot bundle's `files/` the same way).
    #[arg(long)]
    files: Option<PathBuf>,
    /// Address the `tcp` service binds listeners to (`0.0.0.0` exposes
    /// servers to the network).
    #[arg(long, default_value = "127.0.0.1")]
    listen: std::net::Ipv4Addr,
    /// A FAT disk image: served by the block service (a file on the host)
    /// and the file server `fs` on it, as a virtio-blk disk is in QEMU.
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// The file server program for `--disk` (default: `wasmos_fs.wasm`
    /// where `cargo xtask` builds it, beside this binary's target folder).
    #[arg(long, value_name = "FILE")]
    fs_server: Option<PathBuf>,
    /// An argument for the file server (repeatable; tests use it).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    fs_arg: Vec<String>,
    /// Start a program that fails (non-zero exit, killed) again, with
    /// back-off (servers: one task's death must not end the service).
    #[arg(long)]
    restart: bool,
    /// The system services the programs may look up, comma-separated
    /// (`tcp`, `sysinfo`, `fs`; default none): their namespace, as
    /// `boot.cfg`'s `names.` lines give one in QEMU (docs/ABI.md).
    #[arg(long, value_name = "NAMES", default_value = "", value_parser = parse_namespace)]
    grant: Namespace,
    /// An environment variable for the programs, `K=V` (repeatable); WASI
    /// programs see it after the `WASMOS_*` ones.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<String>,
    /// Programs to start: `file.wasm` (any core), `file.wasm@3`, `file.wasm@all`,
    /// `file.wasm*4` (four copies, on cores 0-3; round the cores again past
    /// the last), as init's `spawn=` in QEMU.
    #[arg(required = true)]
    programs: Vec<String>,
    /// Arguments for every program (after `--`); argv[0] is its name.
    #[arg(last = true)]
    args: Vec<String>,
}

/// `--grant`'s list, or which names it may hold.
fn parse_env(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) if !key.is_empty() && !s.contains('\0') => Ok(s.to_owned()),
        _ => Err("expected K=V (a non-empty name, then =)".to_owned()),
    }
}

fn parse_namespace(list: &str) -> Result<Namespace, String> {
    Namespace::parse(list).map_err(|_| format!("the system services are {}", SYSTEM_SERVICES.join(", ")))
}

/// Linux as a WasmOS platform.
struct Linux {
    /// The clock and the per-core "IPIs" (condvars).
    wakers: Arc<Wakers>,
    /// `files/<path>` -> contents, loaded from `--files` at start.
    files: HashMap<String, Vec<u8>>,
    /// Our stdin, as the programs' console input.
    stdin: Arc<stdin::HostStdin>,
}

/// Loads every regular file below `dir` as `<prefix>/<relative path>`.
fn load_files(dir: &Path, prefix: &str, out: &mut HashMap<String, Vec<u8>>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry?;
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        if entry.file_type()?.is_dir() {
            load_files(&entry.path(), &name, out)?;
        } else {
            out.insert(name, std::fs::read(entry.path())?);
        }
    }
    Ok(())
}

impl Platform for Linux {
    fn now_ns(&self) -> u64 {
        self.wakers.now_ns()
    }

    fn wake_core(&self, core: usize) {
        self.wakers.wake(core)
    }

    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        for line in text.trim_end_matches('\n').lines() {
            eprintln!("[core{core} task {task}] {line}");
        }
    }

    fn output(&self, _core: usize, _task: &str, stream: Stream, text: &[u8]) {
        use std::io::Write;
        // Flushed at once: the program's two streams and the log keep
        // their order on a terminal. A closed pipe is the reader's choice.
        let mut out: Box<dyn Write> = match stream {
            Stream::Stdout => Box::new(std::io::stdout().lock()),
            Stream::Stderr => Box::new(std::io::stderr().lock()),
        };
        let _ = out.write_all(text).and_then(|()| out.flush());
    }

    fn boot_file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    fn console_read(&self, buf: &mut [u8]) -> Option<usize> {
        stdin::HostStdin::read(&self.stdin, buf)
    }

    fn console_ready(&self) -> bool {
        self.stdin.ready()
    }

    fn console_wait(&self, core: Option<usize>) {
        self.stdin.wait(core)
    }

    /// The kernel's randomness, on Linux: /dev/urandom.
    fn fill_random(&self, buf: &mut [u8]) {
        use std::io::Read;
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf)).is_ok();
        assert!(ok, "/dev/urandom unreadable");
    }
}

/// The block service over `disk` and the file server with the one
/// capability to it (its handle 1), as the kernel starts them.
/// A program's file and the cores of its copies (-1: any), from
/// `file.wasm`, `file.wasm@k`, `file.wasm@all` or `file.wasm*n`.
fn placement(item: &str, cores: usize) -> Result<(&str, Vec<i32>)> {
    if let Some((file, at)) = item.rsplit_once('@') {
        let cores = match at {
            "all" => (0..cores as i32).collect(),
            k => vec![k.parse().with_context(|| format!("bad core in {item}"))?],
        };
        return Ok((file, cores));
    }
    if let Some((file, n)) = item.rsplit_once('*') {
        let n: usize = n
            .parse()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .with_context(|| format!("bad number of copies in {item}"))?;
        return Ok((file, (0..n).map(|i| (i % cores.max(1)) as i32).collect()));
    }
    Ok((item, vec![-1]))
}

fn start_storage(sys: &System, disk: &Path, server: Option<&Path>, args: &[String]) -> Result<()> {
    let image =
        wasmos_block::FileDisk::open(disk, false).with_context(|| format!("cannot open disk {}", disk.display()))?;
    let blk = sys
        .start_native_unnamed(0, Box::new(wasmos_block::BlockService::new(image)))
        .map_err(|e| anyhow::anyhow!("cannot start the block service: {}", e.name()))?;
    let default = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("wasm32-unknown-unknown/release/wasmos_fs.wasm"))
        .context("no default file server path")?;
    let server = server.map(Path::to_path_buf).unwrap_or(default);
    let wasm = std::fs::read(&server)
        .with_context(|| format!("cannot read the file server {} (--fs-server)", server.display()))?;
    let mut argv = vec!["fs"];
    argv.extend(args.iter().map(String::as_str));
    sys.spawn_with_caps(&wasm, &argv, 0, &[blk]).map_err(|e| anyhow::anyhow!("{}: {}", server.display(), e.name()))?;
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wasmos-hosted: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    if cli.cores == 0 || cli.cores > 256 {
        bail!("--cores must be 1..=256");
    }
    let mut files = HashMap::new();
    if let Some(dir) = &cli.files {
        load_files(dir, "files", &mut files)?;
    }
    let wakers = Arc::new(Wakers::new(cli.cores));
    let linux = Arc::new(Linux { wakers: wakers.clone(), files, stdin: stdin::HostStdin::new(wakers.clone()) });
    let sys = Arc::new(System::new(cli.cores, Config::default(), linux));
    // The services every platform provides, here over the host's
    // facilities: counters, and TCP over the host's sockets.
    let status = |e: wasmos_ipc::abi::Status| anyhow::anyhow!("cannot start a service: {}", e.name());
    sys.start_native(wasmos_ipc::sysinfo::SERVICE, 0, Box::new(SysInfo)).map_err(status)?;
    let tcp = TcpService::new(HostNet::new(cli.listen));
    sys.start_native(wasmos_ipc::net::SERVICE, 0, Box::new(tcp)).map_err(status)?;

    // With a disk, the cores start first and the programs only once the
    // file server serves `fs`: a WASI program gets its `/disk` preopen
    // when it starts, if `fs` is there then.
    let mut early_cores = None;
    if let Some(disk) = &cli.disk {
        start_storage(&sys, disk, cli.fs_server.as_deref(), &cli.fs_arg)?;
        let cores = early_cores.insert(Cores::start_all(&sys, &wakers));
        let until = sys.now_ns().saturating_add(10_000_000_000);
        while !sys.has_service(wasmos_ipc::fs::SERVICE) && sys.now_ns() < until {
            let _ = cores.wait_any(&[], 10_000_000);
        }
        if !sys.has_service(wasmos_ipc::fs::SERVICE) {
            eprintln!("wasmos-hosted: the file server did not register \"fs\" within 10 s");
        }
    }

    let env: Vec<&str> = cli.env.iter().map(String::as_str).collect();
    let mut started: Vec<Started> = Vec::new();
    for item in &cli.programs {
        let (file, cores) = placement(item, cli.cores)?;
        let path = PathBuf::from(file);
        let bytes = Arc::new(std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?);
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("task").to_owned();
        let mut argv = vec![name.clone()];
        argv.extend(cli.args.iter().cloned());
        for core in cores {
            let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
            let id = sys
                .spawn_env(&bytes, &argv_ref, &env, core, cli.grant)
                .map_err(|e| anyhow::anyhow!("{file}: {}", e.name()))?;
            let now = sys.now_ns();
            started.push(Started {
                name: name.clone(),
                bytes: bytes.clone(),
                argv: argv.clone(),
                core,
                id,
                since: now,
                backoff_ms: 0,
            });
        }
    }

    let deadline = cli.timeout.map_or(u64::MAX, |s| sys.now_ns().saturating_add(s.saturating_mul(1_000_000_000)));
    let mut cores = early_cores.unwrap_or_else(|| Cores::start_all(&sys, &wakers));
    let mut exits: Vec<Option<TaskExit>> = vec![None; started.len()];
    loop {
        let now = sys.now_ns();
        if now >= deadline {
            eprintln!("wasmos-hosted: stopped after {} s", cli.timeout.unwrap_or(0));
            return Ok(0);
        }
        let watch: Vec<TaskId> = started.iter().zip(&exits).filter(|(_, e)| e.is_none()).map(|(s, _)| s.id).collect();
        if watch.is_empty() {
            break;
        }
        // With restarts pending, wake in time for the next one.
        let got = cores.wait_any(&watch, deadline - now);
        let ended: Vec<(TaskId, TaskExit)> = watch.iter().zip(got).filter_map(|(id, e)| Some((*id, e?))).collect();
        for (id, exit) in ended {
            let Some(i) = started.iter().position(|s| s.id == id) else { continue };
            let failed = exit.reason != ExitReason::Exited || exit.code != 0;
            if !(cli.restart && failed) {
                exits[i] = Some(exit);
                continue;
            }
            let task = &mut started[i];
            let now = sys.now_ns();
            task.backoff_ms = if now.saturating_sub(task.since) > 30_000_000_000 {
                100
            } else {
                (task.backoff_ms * 2).clamp(100, 10_000)
            };
            let why = if exit.reason == ExitReason::Exited {
                format!("exited with code {}", exit.code)
            } else {
                format!("killed: {} (exit code {})", exit.reason.name(), exit.code)
            };
            eprintln!("wasmos-hosted: {} {why}; restarting in {} ms", task.name, task.backoff_ms);
            // The other tasks keep running meanwhile (cores 1..).
            let _ = cores.wait_any(&[], task.backoff_ms * 1_000_000);
            let argv: Vec<&str> = task.argv.iter().map(String::as_str).collect();
            match sys.spawn_env(&task.bytes, &argv, &env, task.core, cli.grant) {
                Ok(new) => {
                    task.id = new;
                    task.since = sys.now_ns();
                }
                Err(e) => {
                    eprintln!("wasmos-hosted: cannot restart {}: {}", task.name, e.name());
                    exits[i] = Some(exit);
                }
            }
        }
    }
    let code = exits
        .into_iter()
        .flatten()
        .map(|e| if e.reason == ExitReason::Exited { e.code as u8 } else { 101 })
        .find(|c| *c != 0);
    Ok(code.unwrap_or(0))
}

/// A program started from the command line, and what restarting it takes.
struct Started {
    name: String,
    bytes: Arc<Vec<u8>>,
    argv: Vec<String>,
    core: i32,
    id: TaskId,
    /// When this instance started.
    since: u64,
    backoff_ms: u64,
}
