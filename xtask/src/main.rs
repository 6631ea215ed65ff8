//! `cargo xtask`: the one entry point for building, booting and testing
//! WasmOS. Each subcommand installs its prerequisites first (or says how,
//! when it cannot) and works on the checkout it is run in, found at run
//! time from the current directory.
//!
//! Modules: [`prereq`] (toolchain, QEMU, OVMF), [`build`] (kernel, boot
//! bundle, disk images), [`qemu`] (command line, running, exit status),
//! [`test`] (host unit tests, then the QEMU suites from `wasmos-tests`),
//! [`bench`] (the benchmark run and its report), [`disk`] (disk images and
//! the storage suites).

mod bench;
mod build;
mod disk;
mod fuzz;
mod lint;
mod prereq;
mod profile;
mod qemu;
mod soak;
mod test;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, boot and test WasmOS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build the kernel, the boot bundle and a disk image, and print its path.
    Build(BuildOpts),
    /// Build and boot WasmOS in QEMU (COM1 on this terminal; Ctrl-A X quits).
    Run(RunOpts),
    /// Run every test: host unit tests, then the QEMU boot suites.
    Test(TestOpts),
    /// Run Wasm programs on Linux with the hosted runtime (same .wasm files).
    Hosted(HostedOpts),
    /// Run a mixed workload on every core for a while and check nothing leaks.
    Soak(SoakOpts),
    /// Fuzz the bundle reader, the result channel, the Wasm loader and the
    /// system calls (cargo-fuzz; needs nightly).
    Fuzz(FuzzOpts),
    /// Benchmark the Wasm path against native ring-3 tasks in QEMU, plus
    /// Linux baselines; writes target/bench/<timestamp>/.
    Bench(BenchOpts),
    /// Make a disk image, or put host files on it and take them off.
    Disk(disk::DiskOpts),
    /// `cargo fmt --check` and `cargo clippy -D warnings` over every
    /// workspace and target (also a suite of `cargo xtask test`).
    Lint,
    /// Instruction counts per IPC operation on the hosted runtime (callgrind).
    Profile {
        /// Also show where each operation's instructions go, per function.
        #[arg(long)]
        breakdown: bool,
    },
    /// (Internal) the other process of the pipe ping-pong baseline.
    #[command(name = "bench-pipe-child", hide = true)]
    BenchPipeChild { cpu: usize },
}

#[derive(Args)]
struct BenchOpts {
    /// A short run (about a tenth of the samples), for checks.
    #[arg(long)]
    quick: bool,
    /// The web benchmark instead: webapi with 1, 2, 4 and 8 workers, in
    /// QEMU and hosted, under 1, 8 and 64 closed-loop connections.
    #[arg(long)]
    http: bool,
    /// Number of cores.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    smp: u32,
    /// QEMU accelerator. KVM needs a working /dev/kvm; the report says which produced it.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Directory for the report (default target/bench/<timestamp>).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct SoakOpts {
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Number of cores.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    smp: u32,
}

#[derive(Args)]
struct FuzzOpts {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Targets to run (default: all).
    targets: Vec<String>,
}

#[derive(Args)]
struct HostedOpts {
    /// Number of cores (OS threads).
    #[arg(long, default_value_t = 8)]
    cores: usize,
    /// Stop after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Port the default web server listens on (127.0.0.1).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Web server workers of the default demo (default: one on every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: Option<u32>,
    /// Directory whose files WASI programs see, read-only, under `/`.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// A FAT disk image for the file server `fs` (as `run --disk`).
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// The system services your programs may look up (comma-separated:
    /// tcp, sysinfo, fs; default none). The default demo gets tcp,sysinfo.
    #[arg(long, value_name = "NAMES")]
    grant: Option<String>,
    /// An environment variable for the programs (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    env: Vec<String>,
    /// Programs: `file.wasm[@core|@all]` (default: webapi, and the token
    /// ring on every core: what `cargo xtask run` boots).
    programs: Vec<String>,
    /// Arguments for the programs (after `--`), each passed exactly.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args, Clone)]
pub struct BuildOpts {
    /// Build the kernel with the release profile (the default).
    #[arg(long, conflicts_with = "debug")]
    release: bool,
    /// Build the kernel with the dev profile (opt-level 1, debug assertions).
    #[arg(long)]
    debug: bool,
    /// Make the UEFI image (booted with OVMF) instead of the BIOS one.
    #[arg(long)]
    uefi: bool,
}

impl BuildOpts {
    pub fn profile(&self) -> build::Profile {
        if self.debug { build::Profile::Debug } else { build::Profile::Release }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Accel {
    Tcg,
    Kvm,
}

pub use wasmos_bundle::Mode;

/// `--env K=V`: a non-empty key without `=`, no NUL.
fn parse_env(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((key, _)) if !key.is_empty() && !s.contains('\0') => Ok(s.to_owned()),
        _ => Err("expected K=V (a non-empty name, then =)".to_owned()),
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
    Mode::parse(s).ok_or_else(|| format!("expected one of {}", names.join(", ")))
}

#[derive(Args)]
struct RunOpts {
    #[command(flatten)]
    build: BuildOpts,
    /// Number of CPU cores (1..=64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    smp: u32,
    /// Guest memory, in QEMU's syntax.
    #[arg(long, default_value = "512M")]
    mem: String,
    /// QEMU accelerator. KVM needs a working /dev/kvm.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Stop QEMU after this many seconds (a still-running machine is not an error).
    #[arg(long)]
    timeout: Option<u64>,
    /// What the kernel does after booting: run (start programs and keep
    /// running), test (in-kernel tests), fault-demo (show an exception report).
    #[arg(long, value_parser = parse_mode, default_value = "run")]
    mode: Mode,
    /// With --mode test: run only tests whose names contain one of these
    /// comma-separated substrings.
    #[arg(long)]
    tests: Option<String>,
    /// Add your own Wasm program to the boot bundle and start it (repeatable).
    /// It must export `_start` and import only from the `wasmos` module.
    #[arg(long, value_name = "FILE")]
    wasm: Vec<PathBuf>,
    /// With --wasm: the system services the programs may look up
    /// (comma-separated: tcp, sysinfo, fs; default none). Written to
    /// boot.cfg as their `names.` lines; init hands them down.
    #[arg(long, value_name = "NAMES", requires = "wasm")]
    grant: Option<String>,
    /// With --wasm: an environment variable for the programs (repeatable;
    /// WASI programs see it after the WASMOS_* ones). Written to the
    /// bundle as `env/<program>`, which init hands down.
    #[arg(long = "env", value_name = "K=V", requires = "wasm", value_parser = parse_env)]
    env: Vec<String>,
    /// Host port (on 127.0.0.1) forwarded to the web server inside the
    /// machine (webapi, port 8080 there): `curl http://127.0.0.1:PORT/`.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// Web server workers (webapi on cores 0, 1, ..., sharing its port;
    /// default: one on every core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    workers: Option<u32>,
    /// No network card (and so no `tcp` service).
    #[arg(long)]
    no_net: bool,
    /// The disk image attached as a virtio-blk disk (FAT; the file server
    /// `fs` serves it). Default: target/xtask/disk.img, made on first use.
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// With --wasm: leave QEMU when the programs have ended, and exit with
    /// their status (the first non-zero exit code; 101 for a killed one).
    #[arg(long, requires = "wasm")]
    exit: bool,
    /// A kernel setting for boot.cfg, KEY=VALUE (repeatable), e.g.
    /// `tick_hz=1` or `net.irq=off` (poll the network card instead of
    /// taking its interrupt); the keys are listed in kernel/src/boot_config.rs.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_kernel_cfg)]
    boot_cfg: Vec<(String, String)>,
    /// Arguments for the `--wasm` programs (after `--`), each passed
    /// exactly, spaces and quotes included.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args)]
struct TestOpts {
    /// Build the kernel with the dev profile instead of release.
    #[arg(long)]
    debug: bool,
    /// Run only the suites whose names contain this (host tests still run), e.g. `net` (both
    /// network suites), `net-qemu`, `net-hosted`, `hosted`.
    #[arg(long)]
    suite: Option<String>,
    /// Skip the host unit tests.
    #[arg(long)]
    no_host: bool,
}

fn main() {
    match run(Cli::parse()) {
        Ok(status) => std::process::exit(status),
        Err(e) => {
            // `{:#}` shows the cause chain without a backtrace dump.
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs one subcommand; returns the status xtask exits with.
fn run(cli: Cli) -> Result<i32> {
    let cwd = std::env::current_dir()?;
    let root = workspace_root(&cwd).with_context(|| {
        format!("{} is not inside a WasmOS checkout (no directory above has xtask/Cargo.toml)", cwd.display())
    })?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Command::Build(opts) => {
            prereq::toolchain(&root)?;
            let image = build::image(&root, "build", &opts, &build::BootConfig::run())?;
            println!("{}", image.display());
            Ok(0)
        }
        Command::Run(opts) => run_command(&root, &cwd, &opts),
        Command::Test(opts) => test::run(&root, &opts).map(|()| 0),
        Command::Bench(opts) => {
            prereq::toolchain(&root)?;
            prereq::qemu(false)?;
            let out = opts.out.as_ref().map(|p| cwd.join(p));
            let bench_opts = bench::Opts { quick: opts.quick, smp: opts.smp, accel: opts.accel, out, quiet: false };
            if opts.http { bench::run_http(&root, &bench_opts) } else { bench::run(&root, &bench_opts) }.map(|_| 0)
        }
        Command::Disk(opts) => {
            // Its FILE and DEST paths are the user's, relative to where
            // the command was given.
            std::env::set_current_dir(&cwd)?;
            disk::command(&root, &opts).map(|()| 0)
        }
        Command::Lint => {
            prereq::toolchain(&root)?;
            let mut failed = 0;
            for (name, result) in lint::checks(&root)? {
                match result {
                    Ok(_) => println!("  ok    {name}"),
                    Err(why) => {
                        failed += 1;
                        println!("  FAIL  {name}:\n        {why}");
                    }
                }
            }
            if failed > 0 {
                anyhow::bail!("{failed} lint check(s) failed");
            }
            Ok(0)
        }
        Command::Profile { breakdown } => profile::run(&root, breakdown).map(|()| 0),
        Command::BenchPipeChild { cpu } => {
            wasmos_bench::host::pipe_child(cpu);
            Ok(0)
        }
        Command::Soak(opts) => {
            prereq::toolchain(&root)?;
            prereq::qemu(false)?;
            let checks = soak::run(&root, opts.minutes * 60, opts.smp)?;
            let failed: Vec<&str> = checks.iter().filter(|c| !c.passed()).map(|c| c.name.as_str()).collect();
            for c in &checks {
                match &c.result {
                    Ok(_) => println!("  ok    {}", c.name),
                    Err(why) => println!("  FAIL  {}: {why}", c.name),
                }
            }
            if !failed.is_empty() {
                anyhow::bail!("soak failed: {}", failed.join(", "));
            }
            Ok(0)
        }
        Command::Fuzz(opts) => {
            fuzz::prerequisites()?;
            fuzz::build(&root)?;
            let targets: Vec<&str> = if opts.targets.is_empty() {
                fuzz::TARGETS.to_vec()
            } else {
                opts.targets.iter().map(String::as_str).collect()
            };
            let mut found = 0;
            for target in targets {
                println!("==> fuzz {target} for {} s", opts.seconds);
                if let Some(report) = fuzz::run(&root, target, opts.seconds)? {
                    println!("{report}");
                    found += 1;
                }
            }
            if found > 0 {
                anyhow::bail!("{found} target(s) found a crash (inputs in target/fuzz/artifacts)");
            }
            Ok(0)
        }
        Command::Hosted(opts) => hosted_command(&root, &cwd, &opts),
    }
}

/// `cargo xtask run`: builds an image of this run's own and boots it.
fn run_command(root: &Path, cwd: &Path, opts: &RunOpts) -> Result<i32> {
    prereq::toolchain(root)?;
    prereq::qemu(opts.build.uefi)?;
    let http_port = (!opts.no_net).then_some(opts.http_port);
    if let Some(port) = http_port {
        qemu::ensure_port_free(port, "pick another with --http-port N (or --no-net)")?;
    }
    let disk = disk::for_run(root, opts.disk.as_ref().map(|d| cwd.join(d)).as_deref())?;
    let _claim = disk::claim(&disk)?;
    let config = run_config(cwd, opts)?;
    let dir = build::RunDir::create(root)?;
    let image = build::image(root, &dir.name, &opts.build, &config)?;
    let machine = qemu::Machine {
        image,
        uefi: opts.build.uefi,
        smp: opts.smp,
        mem: opts.mem.clone(),
        accel: opts.accel,
        http_port,
        rdtscp: opts.mode == Mode::Bench,
        disk: Some(disk),
    };
    qemu::run_interactive(&dir.path, &machine, opts.timeout, config.exit_with && !config.wasm.is_empty())
}

/// What `cargo xtask run` puts in the boot bundle; `--wasm` paths are
/// relative to `cwd`, where the command was given.
fn run_config(cwd: &Path, opts: &RunOpts) -> Result<build::BootConfig> {
    let grant = opts.grant.clone().unwrap_or_default();
    if wasmos_ipc::names::Namespace::parse(&grant).is_err() {
        anyhow::bail!(
            "--grant {grant:?}: the system services are {} (comma-separated)",
            wasmos_ipc::names::SYSTEM_SERVICES.join(", ")
        );
    }
    Ok(build::BootConfig {
        tests: opts.tests.clone(),
        wasm: opts.wasm.iter().map(|p| cwd.join(p)).collect(),
        args: opts.args.clone(),
        env: opts.env.clone(),
        grant,
        exit_with: opts.exit,
        hostfwd: (!opts.no_net).then_some((opts.http_port, qemu::GUEST_HTTP_PORT)),
        webapi_workers: opts.workers.unwrap_or(opts.smp),
        kernel_cfg: opts.boot_cfg.clone(),
        ..build::BootConfig::mode(opts.mode)
    })
}

/// `--boot-cfg KEY=VALUE`: one line of boot.cfg, which has no quoting.
fn parse_kernel_cfg(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg.split_once('=').ok_or("expected KEY=VALUE")?;
    let plain = |t: &str| !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == '#' || c == '=');
    if !plain(key) || value.contains(|c: char| c.is_control() || c == '#') {
        return Err(format!("{arg:?}: KEY=VALUE, with no spaces, '#' or '=' in the key"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `cargo xtask hosted`: wasmos-hosted with the same options, and the
/// demo (webapi and the token ring) when no program is given; exits with
/// wasmos-hosted's status.
fn hosted_command(root: &Path, cwd: &Path, opts: &HostedOpts) -> Result<i32> {
    prereq::toolchain(root)?;
    build::servers(root)?;
    let binary = build::hosted(root)?;
    if opts.programs.is_empty() {
        qemu::ensure_port_free(opts.http_port, "pick another with --http-port N")?;
        eprintln!("xtask: webapi on http://127.0.0.1:{}/ (Ctrl-C stops)", opts.http_port);
    }
    let status = hosted_args(root, cwd, opts, binary).status().context("cannot run wasmos-hosted")?;
    // A signal (Ctrl-C) ends it without a code: the shell's 128 + signal.
    Ok(status.code().unwrap_or(130))
}

/// The wasmos-hosted command line for `opts` (paths relative to `cwd`).
fn hosted_args(root: &Path, cwd: &Path, opts: &HostedOpts, binary: PathBuf) -> std::process::Command {
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("--cores").arg(opts.cores.to_string());
    if let Some(t) = opts.timeout {
        cmd.arg("--timeout").arg(t.to_string());
    }
    if let Some(files) = &opts.files {
        cmd.arg("--files").arg(cwd.join(files));
    }
    if let Some(disk) = &opts.disk {
        cmd.arg("--disk").arg(cwd.join(disk));
    }
    for env in &opts.env {
        cmd.arg("--env").arg(env);
    }
    if opts.programs.is_empty() {
        // A server: started again if it dies, as init does in QEMU; with
        // the services it uses (the token ring needs none, and gets them
        // too: `--grant` is for every program of the command line).
        cmd.args(["--restart", "--grant", "tcp,sysinfo"]);
        let workers = opts.workers.unwrap_or(opts.cores as u32);
        cmd.arg(format!("{}*{workers}", build::program_path(root, "webapi.wasm").display()));
        cmd.arg(format!("{}@all", build::program_path(root, "token_ring.wasm").display()));
        cmd.args(["--", "--port", &opts.http_port.to_string()]);
        cmd.args(&opts.args);
    } else {
        if let Some(grant) = &opts.grant {
            cmd.arg("--grant").arg(grant);
        }
        // `file.wasm@3`: the placement stays on the absolute path.
        cmd.args(opts.programs.iter().map(|p| cwd.join(p)));
        cmd.arg("--").args(&opts.args);
    }
    cmd
}

/// The workspace root, found at run time (not where xtask was compiled:
/// a copied or moved checkout builds its own sources): the nearest
/// directory at or above `start` with `xtask/Cargo.toml` beside a
/// `Cargo.toml`.
fn workspace_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("xtask/Cargo.toml").is_file() && d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: &str = "the \"second\" arg";

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from([&["cargo xtask"], args].concat()).unwrap_or_else(|e| panic!("{e}")).command
    }

    #[test]
    fn run_passes_every_argument_exactly() {
        let Command::Run(opts) =
            parse(&["run", "--wasm", "prog.wasm", "--exit", "--", "first", SECOND, "", "--not-an-option"])
        else {
            panic!("not run")
        };
        assert_eq!(opts.args, ["first", SECOND, "", "--not-an-option"]);
        assert!(opts.exit);
        let config = run_config(Path::new("/home/me/work"), &opts).unwrap();
        assert_eq!(config.wasm, [PathBuf::from("/home/me/work/prog.wasm")]);
        assert_eq!(config.args, opts.args);
        assert!(config.exit_with);
    }

    #[test]
    fn exit_needs_a_program() {
        assert!(Cli::try_parse_from(["cargo xtask", "run", "--exit"]).is_err());
    }

    #[test]
    fn hosted_takes_files_and_arguments() {
        let Command::Hosted(opts) =
            parse(&["hosted", "--files", "data", "--timeout", "5", "prog.wasm@all", "--", SECOND, "-x"])
        else {
            panic!("not hosted")
        };
        let cmd = hosted_args(Path::new("/repo"), Path::new("/cwd"), &opts, PathBuf::from("wasmos-hosted"));
        let args: Vec<&str> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            ["--cores", "8", "--timeout", "5", "--files", "/cwd/data", "/cwd/prog.wasm@all", "--", SECOND, "-x"]
        );
    }

    #[test]
    fn finds_the_workspace_from_any_directory_inside_it() {
        let base = std::env::temp_dir().join(format!("xtask-root-{}", std::process::id()));
        let copy = base.join("copied checkout");
        std::fs::create_dir_all(copy.join("xtask")).unwrap();
        std::fs::create_dir_all(copy.join("servers/hosted/src")).unwrap();
        std::fs::write(copy.join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::write(copy.join("xtask/Cargo.toml"), "[package]\n").unwrap();
        // A nested workspace of its own (servers/) is not the root.
        std::fs::write(copy.join("servers/Cargo.toml"), "[workspace]\n").unwrap();
        assert_eq!(workspace_root(&copy), Some(copy.clone()));
        assert_eq!(workspace_root(&copy.join("servers/hosted/src")), Some(copy.clone()));
        assert_eq!(workspace_root(&copy.join("xtask")), Some(copy.clone()));
        assert_eq!(workspace_root(&base), None);
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_real_workspace_is_found_from_here() {
        let here = std::env::current_dir().unwrap();
        let root = workspace_root(&here).expect("tests run inside the checkout");
        assert!(root.join("rust-toolchain.toml").is_file());
    }
}
