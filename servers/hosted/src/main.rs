//! `wasmos-hosted`: runs WasmOS programs on Linux.
//!
//! The same `wasmos-sched` code as the kernel, with a Linux [`Platform`]:
//! each core is an OS thread running a `CoreScheduler`; "halt until an
//! IPI" is a condvar wait; the clock is `Instant`; the console is stdout.
//! The programs are the very `.wasm` files the kernel boots.
//!
//! ```text
//! wasmos-hosted [--cores N] [--timeout SECS] prog.wasm[@core|@all] ...
//! ```
//! Exits when every started task has ended, with the first non-zero exit
//! code among them (like a shell running one program: `wasmos-hosted
//! prog.wasm` exits with prog's code; a killed task counts as 101), or
//! with 0 after `--timeout`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::ids::TaskId;
use wasmos_sched::{Config, CoreScheduler, Platform, Poll, System};

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
    /// Programs to start: `file.wasm` (any core), `file.wasm@3`, `file.wasm@all`.
    #[arg(required = true)]
    programs: Vec<String>,
    /// Arguments for every program (after `--`); argv[0] is its name.
    #[arg(last = true)]
    args: Vec<String>,
}

/// Linux as a WasmOS platform.
struct Linux {
    start: Instant,
    /// Per core: "wake up" flag + condvar (the IPI).
    wake: Vec<(Mutex<bool>, Condvar)>,
    /// `files/<path>` -> contents, loaded from `--files` at start.
    files: HashMap<String, Vec<u8>>,
}

/// Loads every regular file below `dir` as `files/<relative path>`.
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
    fn boot_file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// The kernel's randomness, on Linux: /dev/urandom.
    fn fill_random(&self, buf: &mut [u8]) {
        use std::io::Read;
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf)).is_ok();
        assert!(ok, "/dev/urandom unreadable");
    }

    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn wake_core(&self, core: usize) {
        let (flag, cv) = &self.wake[core];
        *flag.lock().unwrap() = true;
        cv.notify_one();
    }

    fn console_write(&self, core: usize, task: &str, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        for line in text.trim_end_matches('\n').lines() {
            println!("[core{core} task {task}] {line}");
        }
    }
}

/// Parks the core's thread the way the kernel halts a core: announce
/// sleep, re-check, wait for a wake-up or the next timer deadline.
fn idle(sys: &System, linux: &Linux, core: usize, deadline: Option<u64>) {
    if sys.prepare_sleep(core) {
        let (flag, cv) = &linux.wake[core];
        let mut woken = flag.lock().unwrap();
        // Like the kernel's 100 Hz tick: never sleep past 10 ms.
        let wait = deadline
            .map_or(Duration::from_millis(10), |d| Duration::from_nanos(d.saturating_sub(linux.now_ns())))
            .min(Duration::from_millis(10));
        if !*woken {
            woken = cv.wait_timeout(woken, wait).unwrap().0;
        }
        *woken = false;
    }
    sys.woke(core);
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
    let linux = Arc::new(Linux {
        start: Instant::now(),
        wake: (0..cli.cores).map(|_| (Mutex::new(false), Condvar::new())).collect(),
        files,
    });
    struct Shared(Arc<Linux>);
    impl Platform for Shared {
        fn now_ns(&self) -> u64 {
            self.0.now_ns()
        }
        fn wake_core(&self, core: usize) {
            self.0.wake_core(core)
        }
        fn console_write(&self, core: usize, task: &str, text: &[u8]) {
            self.0.console_write(core, task, text)
        }
        fn boot_file(&self, name: &str) -> Option<&[u8]> {
            self.0.boot_file(name)
        }
        fn fill_random(&self, buf: &mut [u8]) {
            self.0.fill_random(buf)
        }
    }
    let sys = Arc::new(System::new(cli.cores, Config::default(), Box::new(Shared(linux.clone()))));

    let mut started: Vec<(String, TaskId)> = Vec::new();
    for item in &cli.programs {
        let (file, placement) = item.rsplit_once('@').unwrap_or((item.as_str(), ""));
        let path = PathBuf::from(file);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("task").to_owned();
        let cores: Vec<i32> = match placement {
            "" => vec![-1],
            "all" => (0..cli.cores as i32).collect(),
            n => vec![n.parse().with_context(|| format!("bad core in {item}"))?],
        };
        let mut argv = vec![name.as_str()];
        argv.extend(cli.args.iter().map(String::as_str));
        for core in cores {
            let id = sys.spawn_args(&bytes, &argv, core).map_err(|e| anyhow::anyhow!("{file}: {}", e.name()))?;
            started.push((name.clone(), id));
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (1..cli.cores)
        .map(|core| {
            let (sys, linux, stop) = (sys.clone(), linux.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("core{core}"))
                .spawn(move || {
                    let mut sched = CoreScheduler::new(sys.clone(), core);
                    while !stop.load(Ordering::Relaxed) {
                        if let Poll::Idle { deadline } = sched.poll() {
                            idle(&sys, &linux, core, deadline);
                        }
                    }
                })
                .expect("spawn core thread")
        })
        .collect();
    let mut core0 = CoreScheduler::new(sys.clone(), 0);
    let timeout = cli.timeout.map_or(u64::MAX, |s| s.saturating_mul(1_000_000_000));
    let all_done = || started.iter().all(|(_, id)| sys.exit_of(*id).is_some());
    let finished = core0.run_until(timeout, all_done, |s| idle(&sys, &linux, s.core(), None));
    stop.store(true, Ordering::Relaxed);
    for core in 1..cli.cores {
        linux.wake_core(core);
    }
    for t in threads {
        let _ = t.join();
    }
    if !finished {
        println!("wasmos-hosted: stopped after {} s", cli.timeout.unwrap_or(0));
        return Ok(0);
    }
    let code = started
        .iter()
        .filter_map(|(_, id)| sys.exit_of(*id))
        .map(|e| if e.reason == ExitReason::Exited { e.code as u8 } else { 101 })
        .find(|c| *c != 0);
    Ok(code.unwrap_or(0))
}
