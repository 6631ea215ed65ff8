//! `cargo xtask lint` (and the `lint` suite of `cargo xtask test`):
//! `cargo fmt --check` over every workspace and `cargo clippy -D warnings`
//! over every crate, each for the target it is built for.
//!
//! The project has six workspaces (the root, `servers/`, `tests/fuzz`,
//! `tests/wasi-check`, `tests/wasi-files`, `xtask/image-builder`), and the kernel and the Wasm
//! programs only build for their own targets, so a bare `cargo clippy` at
//! the root sees less than half the code. Each pass below is one check,
//! named after what it covers. Two crates get `fmt` only: the fuzz
//! targets (clippy would need the fuzz nightly's clippy component, which
//! its minimal profile leaves out) and the image builder (checking it runs
//! the bootloader's build script, a nested 90 s build, for one short file).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::build::KERNEL_TARGET_SPEC;
use crate::test::SERVERS_HOST_CRATES;

/// Workspaces, relative to the root, that `cargo fmt --check` covers.
const FMT_WORKSPACES: &[&str] =
    &[".", "servers", "tests/fuzz", "tests/wasi-check", "tests/wasi-files", "xtask/image-builder"];

/// One clippy pass: a name, the workspace, the target directory its builds
/// use (clippy's check artifacts sit beside theirs, so the dependencies
/// are checked once), the arguments and environment.
struct Clippy {
    name: &'static str,
    dir: &'static str,
    target_dir: &'static str,
    args: Vec<&'static str>,
    env: &'static [(&'static str, &'static str)],
}

/// Every crate, once, for the target it is built for.
fn passes() -> Vec<Clippy> {
    let wasm = |packages: &[&'static str]| {
        let mut args = vec!["--release", "--target", "wasm32-unknown-unknown"];
        for p in packages {
            args.extend(["-p", p]);
        }
        args
    };
    vec![
        Clippy { name: "host", dir: ".", target_dir: "target", args: vec!["--all-targets"], env: &[] },
        Clippy {
            name: "kernel",
            dir: ".",
            target_dir: "target",
            args: vec![
                "-p",
                "wasmos-kernel",
                "--target",
                KERNEL_TARGET_SPEC,
                "-Zbuild-std=core,alloc,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
                "-Zjson-target-spec",
            ],
            env: &[("RUSTC_BOOTSTRAP", "1")],
        },
        // The crates that also build for the host: the runtime, and those
        // with host unit tests; the others are no_std Wasm programs only.
        Clippy {
            name: "servers-host",
            dir: "servers",
            target_dir: "target/servers",
            args: ["--all-targets", "-p", "wasmos-hosted"].iter().chain(SERVERS_HOST_CRATES).copied().collect(),
            env: &[],
        },
        // As `build::servers` builds them: the no_std programs together,
        // the std file server on its own (their panic handlers differ).
        Clippy {
            name: "servers-wasm",
            dir: "servers",
            target_dir: "target/servers",
            args: wasm(&["wasmos-init", "token-ring", "webapi", "fs-check"]),
            env: &[],
        },
        Clippy { name: "fs-wasm", dir: "servers", target_dir: "target/servers", args: wasm(&["wasmos-fs"]), env: &[] },
        Clippy {
            name: "wasi-check",
            dir: "tests/wasi-check",
            target_dir: "target/wasi",
            args: vec!["--release", "--target", "wasm32-wasip1"],
            env: &[],
        },
        Clippy {
            name: "wasi-files",
            dir: "tests/wasi-files",
            target_dir: "target/wasi-files",
            args: vec!["--release", "--target", "wasm32-wasip1"],
            env: &[],
        },
    ]
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// A check's result, as `cargo xtask test` counts it.
type Outcome = Result<Option<u64>, String>;

/// Runs `cmd`; on failure, the first lines of what it printed.
fn outcome(cmd: &mut Command) -> Result<Outcome> {
    let out = cmd.output().context("cannot run cargo")?;
    if out.status.success() {
        return Ok(Ok(None));
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let shown: Vec<&str> =
        text.lines().filter(|l| !l.trim_start().starts_with("Checking") && !l.trim().is_empty()).take(40).collect();
    Ok(Err(shown.join("\n        ")))
}

/// Every lint pass, as (check name, result).
pub fn checks(root: &Path) -> Result<Vec<(String, Outcome)>> {
    let mut checks = Vec::new();
    for ws in FMT_WORKSPACES {
        let name = format!("lint::fmt::{}", if *ws == "." { "root" } else { ws });
        let result = outcome(cargo().args(["fmt", "--all", "--", "--check"]).current_dir(root.join(ws)))?;
        checks.push((name, result));
    }
    for pass in passes() {
        let target_dir = root.join(pass.target_dir);
        let mut cmd = cargo();
        cmd.arg("clippy")
            .args(&pass.args)
            .arg("--target-dir")
            .arg(&target_dir)
            .args(["--", "-D", "warnings"])
            .envs(pass.env.iter().copied())
            .current_dir(root.join(pass.dir));
        checks.push((format!("lint::clippy::{}", pass.name), outcome(&mut cmd)?));
    }
    Ok(checks)
}
