//! `cargo xtask bench`: boots the kernel in bench mode (the Wasm path and
//! the native ring-3 path, every workload, one boot), measures the host
//! baselines (Linux system call, pipe and futex ping-pong, the hosted
//! runtime), and writes the report: `target/bench/<timestamp>/` with
//! `results.json`, `summary.md` and SVG plots (`wasmos_bench::report`).
//! Progress is printed as the kernel reports each workload.
//! `cargo xtask bench --http` is the web benchmark instead ([`run_http`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use wasmos_bench::protocol::{Line, Path as BenchPath, Unit};
use wasmos_bench::report::{self, Git, Machine as HostMachine, Qemu, Results, Workload};
use wasmos_bench::stats::Summary;
use wasmos_bench::workloads::Sizes;
use wasmos_bench::{host, hosted};
use wasmos_tests::suites::Check;

use crate::build::{self, BootConfig, Profile};
use crate::qemu::{self, Machine};
use crate::{Accel, Mode};

pub struct Opts {
    pub quick: bool,
    pub smp: u32,
    pub accel: Accel,
    pub out: Option<PathBuf>,
    /// Print only the start and the end (inside `cargo xtask test`).
    pub quiet: bool,
}

/// The hidden subcommand the pipe baseline re-executes xtask with.
pub const PIPE_CHILD: &str = "bench-pipe-child";

/// Runs the whole benchmark and returns the report's directory.
pub fn run(root: &Path, opts: &Opts) -> Result<PathBuf> {
    let started = Instant::now();
    let load_before = load_average();
    if opts.accel == Accel::Kvm {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .context("--accel kvm needs a usable /dev/kvm (use --accel tcg)")?;
    }
    let created = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let (created_iso, stamp) = report::timestamp(created);
    let dir = opts.out.clone().unwrap_or_else(|| root.join("target/bench").join(&stamp));
    std::fs::create_dir_all(&dir)?;

    let config = BootConfig { bench_quick: opts.quick, ..BootConfig::mode(Mode::Bench) };
    let image = build::image_named(root, "bench", Profile::Release, false, &config)?;
    let machine = Machine {
        image,
        uefi: false,
        smp: opts.smp,
        mem: "512M".into(),
        accel: opts.accel,
        http_port: None,
        rdtscp: true,
        disk: None,
    };
    println!(
        "==> bench{} in QEMU ({}, -cpu {})",
        if opts.quick { " --quick" } else { "" },
        machine.describe(),
        machine.cpu()
    );
    let timeout = Duration::from_secs(if opts.quick { 900 } else { 3600 });
    let mut shown = 0;
    let qemu_started = Instant::now();
    let (exit, files) = qemu::run_captured(&machine, &build::out_dir(root).join("bench"), timeout, |text| {
        for line in text.lines().skip(shown) {
            if !text.ends_with('\n') && shown + 1 == text.lines().count() {
                break;
            }
            shown += 1;
            match wasmos_bench::protocol::parse_line(line) {
                Some(Line::Progress { index, total, workload, path })
                    if !opts.quiet || index == 1 || index == total =>
                {
                    println!(
                        "  [{index:>3}/{total}] {workload} ({path}) [{:.0} s]",
                        qemu_started.elapsed().as_secs_f64()
                    )
                }
                Some(Line::Fail(why)) => println!("  FAILED: {why}"),
                _ => {}
            }
        }
    })?;
    let text = String::from_utf8_lossy(&std::fs::read(&files.results).unwrap_or_default()).into_owned();
    let kernel = match report::parse_channel(&text) {
        Ok(run) => run,
        Err(why) => {
            let log = String::from_utf8_lossy(&std::fs::read(&files.log).unwrap_or_default()).into_owned();
            let lines: Vec<&str> = log.lines().collect();
            for line in &lines[lines.len().saturating_sub(30)..] {
                println!("  | {line}");
            }
            bail!("{why} (QEMU: {exit:?}; log {})", files.log.display());
        }
    };
    println!("  QEMU part done in {:.0} s", qemu_started.elapsed().as_secs_f64());

    println!("==> host baselines (Linux, outside QEMU)");
    let (host_tsc_hz, host_workloads) = host_baselines(opts.quick, opts.quiet)?;

    let mut workloads = kernel.workloads;
    workloads.extend(host_workloads);
    let results = Results {
        schema: report::SCHEMA,
        created: created_iso,
        quick: opts.quick,
        duration_s: started.elapsed().as_secs_f64(),
        git: git(root),
        machine: HostMachine { load_before, load_after: load_average(), ..host_machine(host_tsc_hz) },
        qemu: Qemu {
            version: crate::prereq::qemu_version(),
            accel: match opts.accel {
                Accel::Tcg => "tcg".into(),
                Accel::Kvm => "kvm".into(),
            },
            smp: opts.smp,
            memory: machine.mem.clone(),
            cpu: machine.cpu().into(),
            firmware: "bios".into(),
        },
        guest: kernel.guest,
        comparisons: Results::compare(&workloads),
        workloads,
    };
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    std::fs::write(dir.join("summary.md"), results.markdown())?;
    wasmos_bench::plot::write_all(&results, &dir).map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
    let latest = root.join("target/bench/latest");
    let _ = std::fs::remove_file(&latest);
    #[cfg(unix)]
    let _ = std::os::unix::fs::symlink(&dir, &latest);

    if !opts.quiet {
        println!();
        println!("{:<28} {:>22} {:>22} {:>8}", "workload (median)", "Wasm", "native", "W/N");
        for c in &results.comparisons {
            let find = |p| results.workloads.iter().find(|w| w.name == c.workload && w.path == p);
            if let (Some(w), Some(n)) = (find(BenchPath::Wasm), find(BenchPath::Native)) {
                let (wasm, native) =
                    (report::fmt_op(w.ns.median, w.cycles.median), report::fmt_op(n.ns.median, n.cycles.median));
                println!("{:<28} {wasm:>22} {native:>22} {:>8.2}", c.workload, c.ratio_median);
            }
        }
    }
    let problems = results.problems();
    if !problems.is_empty() {
        bail!("the report is not well formed: {}", problems.join("; "));
    }
    println!("\nreport: {} (took {:.0} s)", dir.display(), started.elapsed().as_secs_f64());
    Ok(dir)
}

fn host_baselines(quick: bool, quiet: bool) -> Result<(u64, Vec<Workload>)> {
    if !host::has_rdtscp() {
        bail!("the host CPU has no RDTSCP");
    }
    let sizes = Sizes::new(quick);
    let hz = host::calibrate_tsc(200);
    let mut out = Vec::new();
    let mut add = |name: &str, cores: u32, unit: Unit, batch: u64, s: Result<Summary, String>| -> Result<()> {
        let s = s.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let w = Workload::new(name, BenchPath::Host, cores, unit, batch, &s, hz, None);
        if !quiet {
            println!(
                "  {name:<28} median {:>22}  p99 {:>22}",
                report::fmt_op(w.ns.median, w.cycles.median),
                report::fmt_op(w.ns.p99, w.cycles.p99)
            );
        }
        out.push(w);
        Ok(())
    };
    let n = sizes.rt_same as usize;
    add(
        "host/getpid",
        1,
        Unit::Cycles,
        sizes.null_batch as u64,
        Ok(host::getpid(sizes.null_samples as usize, sizes.null_batch)),
    )?;
    let exe = std::env::current_exe()?;
    let child = || {
        let mut cmd = Command::new(&exe);
        cmd.arg(PIPE_CHILD);
        cmd
    };
    let other = if host::cpus() > 1 { 1 } else { 0 };
    add("host/pipe/same_core", 1, Unit::Cycles, 1, host::pipe_pingpong(&mut child(), 0, 0, n))?;
    add("host/pipe/cross_core", 2, Unit::Cycles, 1, host::pipe_pingpong(&mut child(), 0, other, n))?;
    add("host/futex/same_core", 1, Unit::Cycles, 1, host::futex_pingpong(0, 0, n))?;
    add("host/futex/cross_core", 2, Unit::Cycles, 1, host::futex_pingpong(0, other, n))?;
    add(
        "hosted/null_syscall",
        1,
        Unit::Ns,
        sizes.null_batch as u64,
        hosted::null_syscall(sizes.null_samples, sizes.null_batch / 10),
    )?;
    add("hosted/ipc_rt/same_core", 1, Unit::Ns, 1, hosted::round_trip(0, sizes.rt_same, true))?;
    add("hosted/ipc_rt/same_core_queued", 1, Unit::Ns, 1, hosted::round_trip(0, sizes.rt_same, false))?;
    add("hosted/ipc_rt/cross_core", 2, Unit::Ns, 1, hosted::round_trip(1, sizes.rt_same, true))?;
    Ok((hz, out))
}

fn git(root: &Path) -> Git {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    };
    Git {
        commit: run(&["rev-parse", "HEAD"]).map(|s| s.trim().to_owned()).unwrap_or_else(|| "unknown".into()),
        dirty: run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.trim().is_empty()),
    }
}

fn host_machine(host_tsc_hz: u64) -> HostMachine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let memory_mib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    let os = format!("{} {}", read("/proc/sys/kernel/ostype").trim(), read("/proc/sys/kernel/osrelease").trim());
    HostMachine { cpu_model, host_cpus: host::cpus(), os, memory_mib, host_tsc_hz, load_before: 0.0, load_after: 0.0 }
}

/// The host's 1-minute load average.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next()?.parse().ok()).unwrap_or(0.0)
}

/// For `cargo xtask test`: a quick run, then the report's checks.
pub fn quick_check(root: &Path) -> Result<Vec<Check>> {
    let dir = build::out_dir(root).join("bench-report");
    let _ = std::fs::remove_dir_all(&dir);
    let opts = Opts { quick: true, smp: 8, accel: Accel::Tcg, out: Some(dir.clone()), quiet: true };
    let ran = run(root, &opts);
    let mut checks = vec![Check {
        name: "bench::quick_run".into(),
        result: ran.as_ref().map(|_| None).map_err(|e| format!("{e:#}")),
    }];
    let report = std::fs::read_to_string(dir.join("results.json")).map_err(|e| e.to_string()).and_then(|text| {
        serde_json::from_str::<Results>(&text).map_err(|e| format!("results.json does not parse: {e}"))
    });
    let well_formed = report.and_then(|r| {
        let problems = r.problems();
        let plots = ["latency.svg", "cross_core.svg", "throughput.svg", "summary.md"]
            .iter()
            .filter(|f| !dir.join(f).exists())
            .count();
        if !problems.is_empty() {
            Err(problems.join("; "))
        } else if plots > 0 {
            Err(format!("{plots} of the plots/summary missing"))
        } else {
            Ok(None)
        }
    });
    checks.push(Check { name: "bench::report_well_formed".into(), result: well_formed });
    Ok(checks)
}

/// Worker counts and client connection counts of the web benchmark.
const WEB_WORKERS: [u32; 4] = [1, 2, 4, 8];
const WEB_CONNECTIONS: [u32; 3] = [1, 8, 64];

/// `cargo xtask bench --http`: webapi with 1, 2, 4 and 8 workers, in QEMU
/// (one boot per worker count) and under wasmos-hosted, each loaded by
/// 1, 8 and 64 closed-loop connections (`wasmos_bench::web`, 127.0.0.1
/// only); writes `results.json`, `summary.md` and `web.svg`.
pub fn run_http(root: &Path, opts: &Opts) -> Result<PathBuf> {
    use wasmos_bench::web::{self, Point, WebResults, Window};
    let started = Instant::now();
    let load_before = load_average();
    let created = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let (created_iso, stamp) = report::timestamp(created);
    let dir = opts.out.clone().unwrap_or_else(|| root.join("target/bench").join(format!("{stamp}-http")));
    std::fs::create_dir_all(&dir)?;
    let window = if opts.quick {
        Window { warmup: Duration::from_secs(1), measure: Duration::from_secs(2), timeout: Duration::from_secs(10) }
    } else {
        Window { warmup: Duration::from_secs(2), measure: Duration::from_secs(8), timeout: Duration::from_secs(20) }
    };
    let mut points = Vec::new();
    let add = |target: &str, workers: u32, port: u16, points: &mut Vec<Point>| {
        for connections in WEB_CONNECTIONS {
            let p = Point::new(target, workers, connections, web::measure(port, connections as usize, window));
            println!(
                "  {target:<6} workers {workers} connections {connections:>2}: {:>7.0} requests/s, p50 {:>9.0} us, p99 {:>9.0} us, {} errors",
                p.requests_per_s, p.latency_us.median, p.latency_us.p99, p.errors
            );
            points.push(p);
        }
    };

    let machine = |image, port| Machine {
        image,
        uefi: false,
        smp: opts.smp,
        mem: "512M".into(),
        accel: opts.accel,
        http_port: Some(port),
        rdtscp: false,
        disk: None,
    };
    println!("==> bench --http in QEMU ({}, -smp {})", if opts.accel == Accel::Kvm { "KVM" } else { "TCG" }, opts.smp);
    for workers in WEB_WORKERS {
        let port = qemu::free_port()?;
        let config =
            BootConfig { hostfwd: Some((port, qemu::GUEST_HTTP_PORT)), webapi_workers: workers, ..BootConfig::run() };
        let image = build::image_named(root, "bench-http", Profile::Release, false, &config)?;
        let m = machine(image, port);
        let mut vm = qemu::Running::start(&m, &build::out_dir(root).join("bench-http"))?;
        vm.wait_for_count("webapi: listening on port", workers as usize, Duration::from_secs(300))
            .with_context(|| format!("QEMU with {workers} workers"))?;
        add("qemu", workers, port, &mut points);
    }

    println!("==> bench --http under wasmos-hosted (--cores {})", opts.smp);
    build::servers(root)?;
    let binary = build::hosted(root)?;
    let webapi = build::program_path(root, "webapi.wasm");
    for workers in WEB_WORKERS {
        let program = format!("{}*{workers}", webapi.display());
        let hosted =
            crate::test::Hosted { binary: &binary, program: &program, cores: opts.smp as usize, restart: false };
        let (mut child, addr, up) = hosted.start(&["--max-per-peer", "200"])?;
        // The workers start one by one; give the last a moment to listen.
        std::thread::sleep(Duration::from_secs(1));
        if up {
            add("hosted", workers, addr.port(), &mut points);
        }
        let _ = child.kill();
        let _ = child.wait();
        if !up {
            bail!("wasmos-hosted with {workers} workers: nothing listens on {addr} after 30 s");
        }
    }

    let results = WebResults {
        schema: web::SCHEMA.into(),
        created: created_iso,
        duration_s: started.elapsed().as_secs_f64(),
        git: git(root),
        machine: HostMachine { load_before, load_after: load_average(), ..host_machine(0) },
        qemu: Qemu {
            version: crate::prereq::qemu_version(),
            accel: if opts.accel == Accel::Kvm { "kvm".into() } else { "tcg".into() },
            smp: opts.smp,
            memory: "512M".into(),
            cpu: String::new(),
            firmware: "bios".into(),
        },
        path: "GET /".into(),
        window_s: window.measure.as_secs_f64(),
        points,
    };
    std::fs::write(dir.join("results.json"), serde_json::to_string_pretty(&results)?)?;
    std::fs::write(dir.join("summary.md"), results.markdown())?;
    web::plot(&results, &dir.join("web.svg")).map_err(|e| anyhow::anyhow!("plotting: {e}"))?;
    let problems = results.problems();
    if !problems.is_empty() {
        bail!("the web report is not well formed: {}", problems.join("; "));
    }
    println!("\nreport: {} (took {:.0} s)", dir.display(), started.elapsed().as_secs_f64());
    Ok(dir)
}
