//! Prerequisites, installed on first use so that `cargo xtask run` and
//! `cargo xtask test` work on a fresh machine that has only rustup and the
//! pinned toolchain:
//!
//! - the targets and components `rust-toolchain.toml` lists, added with
//!   `rustup target add --toolchain <pinned>` and `rustup component add
//!   --toolchain <pinned>` (a plain `rustup toolchain install` run from
//!   under cargo would see `RUSTUP_TOOLCHAIN` and ignore the file);
//! - QEMU, OVMF (UEFI boots) and dosfstools (`fsck.fat`, the storage
//!   suites), through apt-get when running as root or when `sudo -n`
//!   works; otherwise an error naming the exact command.
//!
//! Each check is cheap and installs nothing when everything is there, so
//! every subcommand runs them.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Firmware for UEFI boots, from Debian/Ubuntu's `ovmf` package.
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// What `rust-toolchain.toml` pins.
#[derive(Debug, PartialEq, Eq)]
pub struct Pinned {
    pub channel: String,
    pub components: Vec<String>,
    pub targets: Vec<String>,
}

/// The value of `key = "..."` or the items of `key = ["a", "b"]` on one
/// line of a TOML file (all that rust-toolchain.toml uses).
fn toml_values(text: &str, key: &str) -> Option<Vec<String>> {
    let value = text.lines().find_map(|l| l.trim().strip_prefix(key)?.trim_start().strip_prefix('='))?;
    let value = value.trim().trim_start_matches('[').trim_end_matches(']');
    Some(value.split(',').map(|v| v.trim().trim_matches('"').to_owned()).filter(|v| !v.is_empty()).collect())
}

impl Pinned {
    pub fn parse(text: &str) -> Result<Pinned> {
        let channel = toml_values(text, "channel")
            .and_then(|v| v.into_iter().next())
            .context("rust-toolchain.toml has no channel")?;
        Ok(Pinned {
            channel,
            components: toml_values(text, "components").unwrap_or_default(),
            targets: toml_values(text, "targets").unwrap_or_default(),
        })
    }

    pub fn read(root: &Path) -> Result<Pinned> {
        let path = root.join("rust-toolchain.toml");
        Pinned::parse(&std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?)
    }
}

/// rustup, never steered by the `RUSTUP_TOOLCHAIN` cargo sets for xtask:
/// every call names its toolchain.
fn rustup() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.env_remove("RUSTUP_TOOLCHAIN");
    cmd
}

fn output_of(cmd: &mut Command, what: &str) -> Result<Output> {
    cmd.output().with_context(|| format!("cannot run {what}: install rustup from https://rustup.rs"))
}

/// `rustup <kind> list --installed --toolchain <channel>`.
fn installed(kind: &str, channel: &str) -> Result<String> {
    let out = output_of(rustup().args([kind, "list", "--installed", "--toolchain", channel]), "rustup")?;
    if !out.status.success() {
        bail!(
            "the pinned toolchain {channel} is not installed ({}): run `rustup toolchain install {channel} --profile minimal`",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `component` appears in rustup's installed list, which names
/// most components with the host triple appended (`clippy-x86_64-...`,
/// the triple read off `rustc-<triple>`) and `llvm-tools-preview` as
/// `llvm-tools`.
fn has_component(list: &str, component: &str) -> bool {
    let name = component.strip_suffix("-preview").unwrap_or(component);
    let host = list.lines().find_map(|l| l.trim().strip_prefix("rustc-")).unwrap_or("");
    list.lines()
        .map(str::trim)
        .any(|l| l == name || l.strip_prefix(name).and_then(|r| r.strip_prefix('-')) == Some(host))
}

/// The pinned targets and components not installed yet.
fn missing_rust(pinned: &Pinned) -> Result<(Vec<&str>, Vec<&str>)> {
    let targets = installed("target", &pinned.channel)?;
    let components = installed("component", &pinned.channel)?;
    let targets =
        pinned.targets.iter().map(String::as_str).filter(|t| !targets.lines().any(|l| l.trim() == *t)).collect();
    let components = pinned.components.iter().map(String::as_str).filter(|c| !has_component(&components, c)).collect();
    Ok((targets, components))
}

/// `rustup <kind> add --toolchain <channel> <items>`, said first.
fn rustup_add(kind: &str, channel: &str, items: &[&str]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: adding {kind}s {} to toolchain {channel} (rustup {kind} add)", items.join(", "));
    let status =
        rustup().args([kind, "add", "--toolchain", channel]).args(items).status().context("cannot run rustup")?;
    if !status.success() {
        bail!("`rustup {kind} add --toolchain {channel} {}` failed", items.join(" "));
    }
    Ok(())
}

/// Makes sure the pinned toolchain has every target and component that
/// rust-toolchain.toml lists, adding what is missing.
pub fn toolchain(root: &Path) -> Result<()> {
    let pinned = Pinned::read(root)?;
    let (targets, components) = missing_rust(&pinned)?;
    rustup_add("target", &pinned.channel, &targets)?;
    rustup_add("component", &pinned.channel, &components)?;
    let (targets, components) = missing_rust(&pinned)?;
    if !targets.is_empty() || !components.is_empty() {
        bail!("still missing after rustup: {}", [targets, components].concat().join(", "));
    }
    Ok(())
}

/// A Debian package and how to tell it is installed.
struct Package {
    name: &'static str,
    present: fn() -> bool,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

const QEMU: Package = Package { name: "qemu-system-x86", present: || on_path("qemu-system-x86_64") };
const FIRMWARE: Package = Package { name: "ovmf", present: || Path::new(OVMF).exists() };
const DOSFSTOOLS: Package =
    Package { name: "dosfstools", present: || on_path("fsck.fat") || Path::new("/usr/sbin/fsck.fat").exists() };

/// How apt-get can be run here: directly (root), through `sudo -n`, or not.
fn apt_prefix() -> Option<Vec<&'static str>> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        return Some(Vec::new());
    }
    let sudo = Command::new("sudo").args(["-n", "true"]).output().is_ok_and(|o| o.status.success());
    sudo.then(|| vec!["sudo", "-n"])
}

/// Runs `apt-get <args>` (with `prefix`), its output shown only on failure.
fn apt_get(prefix: &[&str], args: &[&str]) -> Result<()> {
    let mut words: Vec<&str> = prefix.to_vec();
    words.extend(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-qq"]);
    words.extend(args);
    let out = Command::new(words[0]).args(&words[1..]).output().with_context(|| format!("cannot run {}", words[0]))?;
    if !out.status.success() {
        eprint!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        bail!("`{}` failed", words.join(" "));
    }
    Ok(())
}

/// Installs the missing ones of `packages` with apt-get, or fails with
/// the command that would.
fn system_packages(packages: &[Package]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("sudo apt-get install -y {}", missing.join(" "));
    let Some(prefix) = apt_prefix().filter(|_| on_path("apt-get")) else {
        bail!(
            "{} not installed and xtask cannot install them (not root, no `sudo -n`, or no apt-get): run `{command}`",
            missing.join(", ")
        );
    };
    let how = if prefix.is_empty() { "as root" } else { "with sudo -n" };
    eprintln!("xtask: installing {} (apt-get install, {how})", missing.join(", "));
    apt_get(&prefix, &["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    apt_get(&prefix, &args)?;
    let still: Vec<&str> = packages.iter().filter(|p| !(p.present)()).map(|p| p.name).collect();
    if !still.is_empty() {
        bail!("apt-get ran but {} still missing: run `{command}` and check its output", still.join(", "));
    }
    Ok(())
}

/// Makes sure QEMU (and OVMF, for UEFI) are installed.
pub fn qemu(uefi: bool) -> Result<()> {
    if uefi { system_packages(&[QEMU, FIRMWARE]) } else { system_packages(&[QEMU]) }
}

/// Everything `cargo xtask test` boots or checks with: QEMU, OVMF, fsck.fat.
pub fn test_tools() -> Result<()> {
    system_packages(&[QEMU, FIRMWARE, DOSFSTOOLS])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_real_toolchain_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let pinned = Pinned::read(root).unwrap();
        assert_eq!(pinned.channel, "1.95.0");
        assert!(pinned.targets.iter().any(|t| t == "wasm32-wasip1"), "{pinned:?}");
        assert!(pinned.components.iter().any(|c| c == "llvm-tools-preview"), "{pinned:?}");
    }

    #[test]
    fn parses_lists_and_strings() {
        let text = "[toolchain]\nchannel = \"1.2.3\"\ncomponents = [\"a\", \"b-c\"]\ntargets = []\n";
        let pinned = Pinned::parse(text).unwrap();
        assert_eq!(
            pinned,
            Pinned { channel: "1.2.3".into(), components: vec!["a".into(), "b-c".into()], targets: vec![] }
        );
        assert!(Pinned::parse("[toolchain]\n").is_err());
    }

    #[test]
    fn matches_rustups_component_names() {
        let list = "cargo-x86_64-unknown-linux-gnu\nllvm-tools-x86_64-unknown-linux-gnu\nrust-src\n\
                    rust-std-wasm32-wasip1\nrustc-x86_64-unknown-linux-gnu\n";
        assert!(has_component(list, "rust-src"));
        assert!(has_component(list, "llvm-tools-preview"));
        assert!(has_component(list, "cargo"));
        assert!(!has_component(list, "rustfmt"));
        // `rust` is not installed just because `rust-src` and `rust-std-*` are.
        assert!(!has_component(list, "rust"));
        assert!(!has_component("rust-src\n", "rust"));
    }
}
