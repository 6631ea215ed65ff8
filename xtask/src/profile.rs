//! `cargo xtask profile`: instruction counts of the IPC hot path, per
//! operation, from callgrind (repeatable to the instruction on these
//! machines, unlike timings under emulation).
//!
//! Each workload of `bench/examples/profile.rs` (one core, driven on one
//! thread, a clock that ticks only when read) runs twice under callgrind,
//! with [`SMALL`] and [`LARGE`] operations; the difference divided by
//! `LARGE - SMALL` is the cost of one operation, set-up and compilation
//! cancelled out. With `--breakdown`, the same difference per function
//! (exclusive counts) shows where one operation's instructions go.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

const SMALL: u64 = 200;
const LARGE: u64 = 1200;

/// (workload, what one operation is).
pub const WORKLOADS: &[(&str, &str)] = &[
    ("rt", "same-core call + reply (direct hand-off)"),
    ("rt_queued", "same-core call + reply through the ready queue"),
    ("oneway", "one-way message, producer to consumer, same core"),
    ("null", "10 `core_id` host calls (one sample of null_syscall)"),
    ("yield", "sched_yield to another task and back (2 switches)"),
];

pub fn run(root: &Path, breakdown: bool) -> Result<()> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        bail!("valgrind not found: install it with `sudo apt-get install -y valgrind`");
    }
    println!("==> building bench/examples/profile.rs (release)");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "wasmos-bench", "--example", "profile"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building the profile example failed");
    }
    let exe = root.join("target/release/examples/profile");
    let out = root.join("target/profile");
    std::fs::create_dir_all(&out)?;
    println!("{:<10} {:>12}  per operation", "workload", "instructions");
    for (name, what) in WORKLOADS {
        let small = callgrind(&exe, &out, name, SMALL)?;
        let large = callgrind(&exe, &out, name, LARGE)?;
        let per_op = (large.0 - small.0) as f64 / (LARGE - SMALL) as f64;
        println!("{name:<10} {per_op:>12.0}  {what}");
        if breakdown {
            let (a, b) = (functions(&small.1)?, functions(&large.1)?);
            let mut rows: Vec<(f64, &String)> = b
                .iter()
                .map(|(f, n)| ((*n as f64 - *a.get(f).unwrap_or(&0) as f64) / (LARGE - SMALL) as f64, f))
                .collect();
            rows.sort_by(|x, y| y.0.total_cmp(&x.0));
            for (n, f) in rows.iter().take(25).filter(|(n, _)| *n >= 10.0) {
                println!("           {n:>8.0}  {f}");
            }
        }
    }
    Ok(())
}

/// Runs one workload under callgrind: (instructions, output file).
fn callgrind(exe: &Path, out: &Path, name: &str, n: u64) -> Result<(u64, std::path::PathBuf)> {
    let file = out.join(format!("callgrind.{name}.{n}"));
    let run = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", file.display()))
        .arg(exe)
        .args([name, &n.to_string()])
        .output()?;
    let log = String::from_utf8_lossy(&run.stderr);
    if !run.status.success() {
        bail!("profile {name} {n} failed:\n{log}");
    }
    let collected = log
        .lines()
        .find_map(|l| l.split("Collected :").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no instruction count in callgrind's output:\n{log}"))?;
    Ok((collected, file))
}

/// Exclusive instruction counts per function (`callgrind_annotate`).
fn functions(file: &Path) -> Result<HashMap<String, u64>> {
    let out = Command::new("callgrind_annotate").args(["--threshold=100", "--auto=no"]).arg(file).output()?;
    let mut map = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else { continue };
        let Ok(count) = count.replace(',', "").parse::<u64>() else { continue };
        let Some((_, func)) = rest.split_once(")  ") else { continue };
        if func.contains("PROGRAM TOTALS") {
            continue;
        }
        let func = func.split(" [").next().unwrap_or(func);
        let func = func.split_once(':').map_or(func, |(_, f)| f);
        *map.entry(func.to_string()).or_insert(0) += count;
    }
    Ok(map)
}
