//! Building what QEMU boots: the kernel ELF, the boot bundle (ramdisk) and
//! the BIOS or UEFI disk image made by `xtask/image-builder`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{BuildOpts, Mode};

/// The kernel's target: `x86_64-unknown-none` with SSE2 and the hard-float
/// ABI (ARCHITECTURE.md, "The kernel target"), a JSON spec in the
/// repository. Custom targets have no prebuilt `core`/`alloc`, so they
/// are built from the toolchain's `rust-src` (`-Zbuild-std`), which needs
/// RUSTC_BOOTSTRAP=1 on the pinned stable toolchain, as the image
/// builder's bootloader build does.
pub const KERNEL_TARGET_SPEC: &str = "kernel/x86_64-wasmos-kernel.json";
/// The target's name: its spec's file stem, which names the directory
/// under `target/`.
pub const KERNEL_TARGET: &str = "x86_64-wasmos-kernel";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Debug,
    Release,
}

impl Profile {
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }
}

/// What goes into the boot bundle and its `boot.cfg`.
pub struct BootConfig {
    pub mode: Mode,
    pub tests: Option<String>,
    /// The user's own Wasm programs (`--wasm`), started in run mode.
    pub wasm: Vec<PathBuf>,
    /// Their arguments (`-- a b c`).
    pub args: Vec<String>,
    /// How long a soak runs (`mode=soak`).
    pub soak_seconds: Option<u64>,
    /// `(host port, guest port)` QEMU forwards to the machine, for the
    /// banner (`net.hostfwd`).
    pub hostfwd: Option<(u16, u16)>,
    /// `mode=bench`: the short run (`bench_quick=1`).
    pub bench_quick: bool,
}

/// A named blob in the bundle.
type Entry = (String, Vec<u8>);

impl BootConfig {
    pub fn run() -> Self {
        BootConfig::mode(Mode::Run)
    }

    /// Nothing but the mode.
    pub fn mode(mode: Mode) -> Self {
        BootConfig { mode, tests: None, wasm: Vec::new(), args: Vec::new(), soak_seconds: None, hostfwd: None, bench_quick: false }
    }

    /// Bundle entries: the demo, the test programs, the user's programs;
    /// and `boot.cfg`, whose `spawn=` starts the demo or the user's.
    fn entries(&self, root: &Path) -> Result<(String, Vec<Entry>)> {
        let mut entries = servers(root)?;
        for (name, _) in wasmos_tests::programs::ALL {
            entries.push((wasmos_tests::programs::bundle_name(name), wasmos_tests::programs::get(name)));
        }
        if self.mode == Mode::Bench {
            for (name, _) in wasmos_bench::programs::ALL {
                entries.push((wasmos_bench::programs::bundle_name(name), wasmos_bench::programs::get(name)));
            }
        }
        let wasi = wasi_check(root)?;
        entries.push(("test/wasi_check.wasm".into(), std::fs::read(&wasi)?));
        let data = wasi_files(root).join("data");
        for file in std::fs::read_dir(&data).with_context(|| format!("cannot list {}", data.display()))? {
            let file = file?;
            let name = file.file_name().into_string().map_err(|_| anyhow::anyhow!("non-UTF-8 file name"))?;
            entries.push((format!("files/data/{name}"), std::fs::read(file.path())?));
        }
        let mut spawn = Vec::new();
        for path in &self.wasm {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            let name = path.file_name().and_then(|n| n.to_str()).context("--wasm path has no file name")?;
            let name = if name.ends_with(".wasm") { name.to_owned() } else { format!("{name}.wasm") };
            spawn.push(name.clone());
            entries.push((name, bytes));
        }
        if spawn.is_empty() {
            // The default: the token ring demo, and the web server when the
            // machine has a network card to serve on.
            if self.hostfwd.is_some() {
                spawn.push("webapi.wasm".into());
            }
            spawn.push("token_ring.wasm@all".into());
        }
        let mut cfg = format!("mode={}\nspawn={}\n", self.mode.name(), spawn.join(","));
        if !self.args.is_empty() {
            for program in self.wasm.iter().zip(&spawn).map(|(_, s)| s) {
                cfg.push_str(&format!("args.{program}={}\n", self.args.join(" ")));
            }
        }
        if let Some(t) = &self.tests {
            cfg.push_str(&format!("tests={t}\n"));
        }
        if let Some((host, guest)) = self.hostfwd {
            cfg.push_str(&format!("net.hostfwd={host}:{guest}\n"));
        }
        if let Some(s) = self.soak_seconds {
            cfg.push_str(&format!("soak_seconds={s}\n"));
        }
        if self.bench_quick {
            cfg.push_str("bench_quick=1\n");
        }
        Ok((cfg, entries))
    }
}

/// Where xtask keeps its artefacts.
pub fn out_dir(root: &Path) -> PathBuf {
    root.join("target/xtask")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds the kernel and returns the path of its ELF.
pub fn kernel(root: &Path, profile: Profile) -> Result<PathBuf> {
    kernel_with(root, profile, false)
}

fn kernel_with(root: &Path, profile: Profile, quiet: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args(["build", "--package", "wasmos-kernel", "--target", KERNEL_TARGET_SPEC]);
    // `compiler-builtins-mem`: memcpy and friends, which the prebuilt
    // `core` of x86_64-unknown-none carried.
    cmd.args(["-Zbuild-std=core,alloc,compiler_builtins", "-Zbuild-std-features=compiler-builtins-mem", "-Zjson-target-spec"]);
    cmd.env("RUSTC_BOOTSTRAP", "1");
    if quiet {
        cmd.arg("--quiet");
    }
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    let status = cmd.current_dir(root).status().context("cannot run cargo")?;
    if !status.success() {
        bail!("kernel build failed");
    }
    Ok(root.join("target").join(KERNEL_TARGET).join(profile.dir()).join("wasmos-kernel"))
}

/// The programs `servers/` builds: (bundle name, file under the target dir).
const PROGRAMS: &[(&str, &str)] = &[
    ("init.wasm", "wasmos_init.wasm"),
    ("token_ring.wasm", "token_ring.wasm"),
    ("webapi.wasm", "webapi.wasm"),
    ("fs.wasm", "wasmos_fs.wasm"),
    ("test/fs_check.wasm", "fs_check.wasm"),
];

/// `cargo build --quiet --release <args> --target-dir target/<target_dir>`
/// in `dir` (a workspace of its own); returns the target directory.
fn release_build(root: &Path, dir: &str, args: &[&str], target_dir: &str) -> Result<PathBuf> {
    let target_dir = root.join("target").join(target_dir);
    let status = cargo()
        .args(["build", "--quiet", "--release"])
        .args(args)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(root.join(dir))
        .status()
        .with_context(|| format!("cannot run cargo in {dir}"))?;
    if !status.success() {
        bail!("building {dir} ({}) failed", args.join(" "));
    }
    Ok(target_dir)
}

/// Builds the Wasm programs in `servers/` and returns them as bundle entries.
pub fn servers(root: &Path) -> Result<Vec<Entry>> {
    let wasm = ["--target", "wasm32-unknown-unknown"];
    let programs = ["-p", "wasmos-init", "-p", "token-ring", "-p", "webapi", "-p", "fs-check"];
    let target_dir = release_build(root, "servers", &[&wasm[..], &programs].concat(), "servers")?;
    // On its own: the file server links std, whose panic handler would
    // clash with the SDK's if cargo unified the SDK's features across both.
    release_build(root, "servers", &[&wasm[..], &["-p", "wasmos-fs"]].concat(), "servers")?;
    PROGRAMS
        .iter()
        .map(|(entry, file)| {
            let path = target_dir.join("wasm32-unknown-unknown/release").join(file);
            let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok((entry.to_string(), bytes))
        })
        .collect()
}

/// Builds `tests/wasi-check` (a Rust std program, for wasm32-wasip1,
/// built exactly as a user would) and returns its path.
pub fn wasi_check(root: &Path) -> Result<PathBuf> {
    let target_dir = release_build(root, "tests/wasi-check", &["--target", "wasm32-wasip1"], "wasi")?;
    Ok(target_dir.join("wasm32-wasip1/release/wasi-check.wasm"))
}

/// The read-only file tree WASI programs see: `tests/wasi-check/data`,
/// bundled as `files/data/...`.
pub fn wasi_files(root: &Path) -> PathBuf {
    root.join("tests/wasi-check")
}

/// Where `servers()` puts a built program.
pub fn program_path(root: &Path, file: &str) -> PathBuf {
    root.join("target/servers/wasm32-unknown-unknown/release").join(file)
}

/// Builds the hosted runtime (`servers/hosted`) and returns its binary.
pub fn hosted(root: &Path) -> Result<PathBuf> {
    Ok(release_build(root, "servers", &["-p", "wasmos-hosted"], "servers")?.join("release/wasmos-hosted"))
}

/// Writes the boot bundle for `config` and returns its path.
pub fn bundle(root: &Path, name: &str, config: &BootConfig) -> Result<PathBuf> {
    let mut writer = wasmos_bundle::Writer::new();
    let (cfg, entries) = config.entries(root)?;
    writer.add(wasmos_bundle::CONFIG_ENTRY, cfg.into_bytes());
    for (entry, bytes) in entries {
        writer.add(&entry, bytes);
    }
    let dir = out_dir(root).join(name);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bundle.bin");
    std::fs::write(&path, writer.to_bytes())?;
    Ok(path)
}

/// The toolchain channel pinned in rust-toolchain.toml.
fn pinned_toolchain(root: &Path) -> Result<String> {
    let text = std::fs::read_to_string(root.join("rust-toolchain.toml"))?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("channel"))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .next()
        .context("rust-toolchain.toml has no channel")
}

/// Builds the image builder (and with it the bootloader) if needed, and
/// returns the path of its binary.
pub fn image_builder(root: &Path) -> Result<PathBuf> {
    let crate_dir = root.join("xtask/image-builder");
    let target_dir = root.join("target/image-builder");
    let binary = target_dir.join("release/wasmos-image-builder");
    let first_time = !binary.exists();
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"));
    spinner.set_message(if first_time {
        "building the bootloader (first time ~90 s)"
    } else {
        "checking the image builder"
    });
    spinner.enable_steady_tick(Duration::from_millis(120));
    std::fs::create_dir_all(&target_dir)?;
    let log_path = target_dir.join("build.log");
    let log = std::fs::File::create(&log_path)?;
    // The bootloader's build script runs `cargo install ... -Zbuild-std`,
    // which needs RUSTC_BOOTSTRAP on stable. It runs from the registry, out
    // of reach of rust-toolchain.toml, so the toolchain is named explicitly.
    // CARGO_TARGET_DIR must not leak into that nested cargo: it would wait
    // forever for the lock this build holds on the same directory.
    let status = cargo()
        .args(["build", "--release", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&crate_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("RUSTUP_TOOLCHAIN", pinned_toolchain(root)?)
        .env_remove("CARGO_TARGET_DIR")
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .status()
        .context("cannot run cargo for the image builder")?;
    spinner.finish_and_clear();
    if !status.success() {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        bail!("building the image builder failed (full log: {})", log_path.display());
    }
    if first_time {
        eprintln!("xtask: bootloader built");
    }
    Ok(binary)
}

/// Builds everything and returns the disk image for `opts`.
pub fn image(root: &Path, opts: &BuildOpts, config: &BootConfig) -> Result<PathBuf> {
    image_named(root, "run", opts.profile(), opts.uefi, config)
}

/// Like [`image`], with artefacts under `target/xtask/<name>/`.
pub fn image_named(root: &Path, name: &str, profile: Profile, uefi: bool, config: &BootConfig) -> Result<PathBuf> {
    // Quiet: callers that build many images built the kernel loudly once.
    let kernel = kernel_with(root, profile, name != "run")?;
    let builder = image_builder(root)?;
    let bundle = bundle(root, name, config)?;
    let image = out_dir(root).join(name).join(if uefi { "uefi.img" } else { "bios.img" });
    let status = Command::new(builder)
        .arg(&kernel)
        .arg(&bundle)
        .arg(if uefi { "--uefi" } else { "--bios" })
        .arg(&image)
        .status()
        .context("cannot run the image builder")?;
    if !status.success() {
        bail!("making the disk image failed");
    }
    Ok(image)
}
