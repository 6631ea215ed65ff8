//! `cargo xtask fuzz`: the cargo-fuzz (libFuzzer) targets in `tests/fuzz`.
//!
//! Each target runs with the small seed corpus committed in
//! `tests/fuzz/seeds/<target>` and a working corpus in
//! `target/fuzz/corpus/<target>` (not committed). Crashes land in
//! `target/fuzz/artifacts/<target>`. cargo-fuzz needs a nightly toolchain
//! (for the sanitizers); it is installed on first use.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const TARGETS: &[&str] = &["bundle", "result_channel", "wasm_loader", "abi_calls"];

/// Makes sure `cargo +nightly fuzz` works, installing cargo-fuzz if needed.
pub fn prerequisites() -> Result<()> {
    let nightly = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output();
    if !nightly.is_ok_and(|o| o.status.success()) {
        bail!("fuzzing needs a nightly toolchain: run `rustup toolchain install nightly`");
    }
    let fuzz = Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output();
    if fuzz.is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo +nightly install cargo-fuzz --locked)");
    let status = Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]).status()?;
    if !status.success() {
        bail!("installing cargo-fuzz failed");
    }
    Ok(())
}

/// Runs `target` for `seconds`; `Ok(None)` if it found nothing, else the
/// tail of libFuzzer's report.
pub fn run(root: &Path, target: &str, seconds: u64) -> Result<Option<String>> {
    let corpus = root.join("target/fuzz/corpus").join(target);
    let artifacts = root.join("target/fuzz/artifacts").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let out = Command::new("cargo")
        .args(["+nightly", "fuzz", "run", "--fuzz-dir", "fuzz", "-O", target])
        .arg(&corpus)
        .arg(root.join("tests/fuzz/seeds").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(root.join("tests"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .context("cannot run cargo fuzz")?;
    if out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = text.lines().rev().take(25).collect();
    Ok(Some(tail.into_iter().rev().collect::<Vec<_>>().join("\n")))
}

/// Builds every target once (so that timed runs measure fuzzing, not compiling).
pub fn build(root: &Path) -> Result<()> {
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "--fuzz-dir", "fuzz", "-O"])
        .current_dir(root.join("tests"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .status()
        .context("cannot run cargo fuzz")?;
    if !status.success() {
        bail!("building the fuzz targets failed");
    }
    Ok(())
}
