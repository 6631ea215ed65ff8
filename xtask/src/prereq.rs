//! Prerequisite checks: the pinned toolchain's components and targets,
//! QEMU, and OVMF for UEFI boots. Missing Rust pieces are installed with
//! `rustup toolchain install` (which reads rust-toolchain.toml); missing
//! system packages are named with the command that installs them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Firmware for UEFI boots, from Debian/Ubuntu's `ovmf` package.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

const TARGETS: &[&str] = &["x86_64-unknown-none", "wasm32-unknown-unknown", "wasm32-wasip1"];
const COMPONENTS: &[&str] = &["rust-src", "llvm-tools"];

fn rustup_list(args: &[&str]) -> Result<String> {
    let out = Command::new("rustup")
        .args(args)
        .output()
        .context("rustup not found: install it from https://rustup.rs")?;
    if !out.status.success() {
        bail!(
            "`rustup {}` failed: {}\nThe pinned toolchain may be missing: run `rustup toolchain install`.",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn missing_rust_pieces() -> Result<Vec<String>> {
    let targets = rustup_list(&["target", "list", "--installed"])?;
    let components = rustup_list(&["component", "list", "--installed"])?;
    let mut missing: Vec<String> =
        TARGETS.iter().filter(|t| !targets.lines().any(|l| l.trim() == **t)).map(|t| format!("target {t}")).collect();
    missing.extend(
        COMPONENTS
            .iter()
            .filter(|c| !components.lines().any(|l| l.trim().starts_with(**c)))
            .map(|c| format!("component {c}")),
    );
    Ok(missing)
}

/// Makes sure the pinned toolchain has every target and component we use,
/// installing what is missing.
pub fn toolchain() -> Result<()> {
    let missing = missing_rust_pieces()?;
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: the pinned toolchain lacks {}; running `rustup toolchain install`", missing.join(", "));
    let status = Command::new("rustup").args(["toolchain", "install"]).status()?;
    if !status.success() || !missing_rust_pieces()?.is_empty() {
        bail!("`rustup toolchain install` did not install {}; run it yourself and check its output", missing.join(", "));
    }
    Ok(())
}

/// Makes sure QEMU (and OVMF, for UEFI) are installed.
pub fn qemu(uefi: bool) -> Result<()> {
    match Command::new("qemu-system-x86_64").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => bail!("qemu-system-x86_64 not found: install it with `sudo apt-get install -y qemu-system-x86`"),
    }
    if uefi && !Path::new(OVMF).exists() {
        bail!("UEFI firmware {OVMF} not found: install it with `sudo apt-get install -y ovmf`");
    }
    Ok(())
}

/// QEMU's version line, for reports.
pub fn qemu_version() -> String {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}
