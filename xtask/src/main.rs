//! `cargo xtask`: the one entry point for building, booting and testing
//! WasmOS. Each subcommand checks its prerequisites first and says what to
//! install when something is missing.
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
mod prereq;
mod profile;
mod qemu;
mod soak;
mod test;

use std::path::PathBuf;

use anyhow::Result;
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
    /// Programs: `file.wasm[@core|@all]` (default: webapi, and the token
    /// ring on every core: what `cargo xtask run` boots).
    programs: Vec<String>,
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
    /// Host port (on 127.0.0.1) forwarded to the web server inside the
    /// machine (webapi, port 8080 there): `curl http://127.0.0.1:PORT/`.
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// No network card (and so no `tcp` service).
    #[arg(long)]
    no_net: bool,
    /// The disk image attached as a virtio-blk disk (FAT; the file server
    /// `fs` serves it). Default: target/xtask/disk.img, made on first use.
    #[arg(long, value_name = "FILE")]
    disk: Option<PathBuf>,
    /// Arguments for the `--wasm` programs (after `--`; no spaces inside one).
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args)]
struct TestOpts {
    /// Build the kernel with the dev profile instead of release.
    #[arg(long)]
    debug: bool,
    /// Run only the QEMU suites whose names contain this (host tests still run).
    #[arg(long)]
    suite: Option<String>,
    /// Skip the host unit tests.
    #[arg(long)]
    no_host: bool,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        // `{:#}` shows the cause chain without a backtrace dump.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Command::Build(opts) => {
            prereq::toolchain()?;
            let image = build::image(&root, &opts, &build::BootConfig::run())?;
            println!("{}", image.display());
            Ok(())
        }
        Command::Run(opts) => {
            prereq::toolchain()?;
            prereq::qemu(opts.build.uefi)?;
            let wasm = opts.wasm.iter().map(std::path::absolute).collect::<std::io::Result<Vec<_>>>()?;
            let http_port = (!opts.no_net).then_some(opts.http_port);
            if let Some(port) = http_port {
                qemu::ensure_port_free(port, "pick another with --http-port N (or --no-net)")?;
            }
            let config = build::BootConfig {
                tests: opts.tests.clone(),
                wasm,
                args: opts.args.clone(),
                hostfwd: http_port.map(|p| (p, qemu::GUEST_HTTP_PORT)),
                ..build::BootConfig::mode(opts.mode)
            };
            let image = build::image(&root, &opts.build, &config)?;
            let machine = qemu::Machine {
                image,
                uefi: opts.build.uefi,
                smp: opts.smp,
                mem: opts.mem.clone(),
                accel: opts.accel,
                http_port,
                rdtscp: opts.mode == Mode::Bench,
                disk: Some(disk::for_run(&root, opts.disk.as_deref())?),
            };
            qemu::run_interactive(&root, &machine, opts.timeout)
        }
        Command::Test(opts) => test::run(&root, &opts),
        Command::Bench(opts) => {
            prereq::toolchain()?;
            prereq::qemu(false)?;
            let out = opts.out.as_ref().map(std::path::absolute).transpose()?;
            bench::run(&root, &bench::Opts { quick: opts.quick, smp: opts.smp, accel: opts.accel, out, quiet: false }).map(drop)
        }
        Command::Disk(opts) => disk::command(&root, &opts),
        Command::Profile { breakdown } => profile::run(&root, breakdown),
        Command::BenchPipeChild { cpu } => {
            wasmos_bench::host::pipe_child(cpu);
            Ok(())
        }
        Command::Soak(opts) => {
            prereq::toolchain()?;
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
            Ok(())
        }
        Command::Fuzz(opts) => {
            fuzz::prerequisites()?;
            fuzz::build(&root)?;
            let targets: Vec<&str> =
                if opts.targets.is_empty() { fuzz::TARGETS.to_vec() } else { opts.targets.iter().map(String::as_str).collect() };
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
            Ok(())
        }
        Command::Hosted(opts) => {
            prereq::toolchain()?;
            build::servers(&root)?;
            let binary = build::hosted(&root)?;
            let mut programs = opts.programs.clone();
            let defaults = programs.is_empty();
            if defaults {
                qemu::ensure_port_free(opts.http_port, "pick another with --http-port N")?;
                programs.push(build::program_path(&root, "webapi.wasm").display().to_string());
                programs.push(format!("{}@all", build::program_path(&root, "token_ring.wasm").display()));
                eprintln!("xtask: webapi on http://127.0.0.1:{}/ (Ctrl-C stops)", opts.http_port);
            }
            let mut cmd = std::process::Command::new(binary);
            cmd.arg("--cores").arg(opts.cores.to_string()).args(&programs);
            if let Some(t) = opts.timeout {
                cmd.arg("--timeout").arg(t.to_string());
            }
            if defaults {
                cmd.args(["--", "--port", &opts.http_port.to_string()]);
            }
            let status = cmd.status()?;
            if !status.success() {
                anyhow::bail!("wasmos-hosted failed ({status})");
            }
            Ok(())
        }
    }
}

/// The workspace root: xtask lives in `<root>/xtask`.
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask has a parent directory").to_path_buf()
}
