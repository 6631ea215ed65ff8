//! `cargo xtask fuzz`: the cargo-fuzz (libFuzzer) targets in `tests/fuzz`.
//!
//! Each target runs with the small seed corpus committed in
//! `tests/fuzz/seeds/<target>` and a working corpus in
//! `target/fuzz/corpus/<target>` (not committed). Crashes land in
//! `target/fuzz/artifacts/<target>`. cargo-fuzz needs a nightly toolchain
//! (for the sanitizers): the one dated [`NIGHTLY`], never "whatever nightly"
//! (the x86_64 crate's nightly impls broke twice in 2026). It and
//! cargo-fuzz [`CARGO_FUZZ`] are installed on first use.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

pub const TARGETS: &[&str] = &["bundle", "result_channel", "wasm_loader", "abi_calls"];

/// The nightly the fuzz targets build with: the one place it is named.
pub const NIGHTLY: &str = "nightly-2026-05-19";
/// The cargo-fuzz release installed for it.
pub const CARGO_FUZZ: &str = "0.13.2";

/// `cargo +NIGHTLY`, free of the toolchain cargo chose for xtask.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg(format!("+{NIGHTLY}")).env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// The installed cargo-fuzz's version, if any (`cargo-fuzz 0.13.2`).
fn cargo_fuzz_version() -> Option<String> {
    let out = nightly_cargo().args(["fuzz", "--version"]).output().ok().filter(|o| o.status.success())?;
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).map(str::to_owned)
}

/// Makes sure `cargo +NIGHTLY fuzz` works with cargo-fuzz CARGO_FUZZ,
/// installing either if needed.
pub fn prerequisites() -> Result<()> {
    if !succeeds(Command::new("rustup").args(["run", NIGHTLY, "rustc", "--version"]).env_remove("RUSTUP_TOOLCHAIN")) {
        eprintln!(
            "xtask: installing toolchain {NIGHTLY} for the fuzz targets (rustup toolchain install {NIGHTLY} --profile minimal)"
        );
        let status = Command::new("rustup")
            .args(["toolchain", "install", NIGHTLY, "--profile", "minimal"])
            .env_remove("RUSTUP_TOOLCHAIN")
            .status()
            .context("cannot run rustup")?;
        if !status.success() {
            bail!("`rustup toolchain install {NIGHTLY} --profile minimal` failed");
        }
    }
    match cargo_fuzz_version() {
        Some(v) if v == CARGO_FUZZ => return Ok(()),
        Some(v) => eprintln!("xtask: cargo-fuzz {v} installed, the project uses {CARGO_FUZZ}: replacing it"),
        None => {}
    }
    // Built with the pinned stable toolchain (the one running xtask).
    eprintln!("xtask: installing cargo-fuzz {CARGO_FUZZ} (cargo install cargo-fuzz --version {CARGO_FUZZ} --locked)");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["install", "cargo-fuzz", "--version", CARGO_FUZZ, "--locked", "--force"])
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .context("cannot run cargo install")?;
    if !status.success() || cargo_fuzz_version().as_deref() != Some(CARGO_FUZZ) {
        bail!("installing cargo-fuzz {CARGO_FUZZ} failed");
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
    let out = nightly_cargo()
        .args(["fuzz", "run", "--fuzz-dir", "fuzz", "-O", target])
        .arg(&corpus)
        .arg(root.join("tests/fuzz/seeds").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(root.join("tests"))
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
    let status = nightly_cargo()
        .args(["fuzz", "build", "--fuzz-dir", "fuzz", "-O"])
        .current_dir(root.join("tests"))
        .status()
        .context("cannot run cargo fuzz")?;
    if !status.success() {
        bail!("building the fuzz targets failed");
    }
    Ok(())
}
