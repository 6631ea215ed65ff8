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
    /// The core init starts them on (`spawn=name@k`); `None`: the kernel
    /// picks (the console-irq suite puts its reader on core 1).
    pub wasm_core: Option<u32>,
    /// Their arguments (`-- a b c`), each passed exactly as given.
    pub args: Vec<String>,
    /// Their environment variables (`--env K=V`).
    pub env: Vec<String>,
    /// The system services the `--wasm` programs may look up (`--grant`).
    pub grant: String,
    /// Leave QEMU when the `--wasm` programs have ended (`--exit`).
    pub exit_with: bool,
    /// How long a soak runs (`mode=soak`).
    pub soak_seconds: Option<u64>,
    /// `(host port, guest port)` QEMU forwards to the machine, for the
    /// banner (`net.hostfwd`).
    pub hostfwd: Option<(u16, u16)>,
    /// `mode=bench`: the short run (`bench_quick=1`).
    pub bench_quick: bool,
    /// Arguments of the demo's webapi (`args/webapi.wasm`), when it runs.
    pub webapi_args: Vec<String>,
    /// How many webapi workers init starts (`webapi.wasm*N`, on cores 0,
    /// 1, ...; 1: one, on a core the kernel picks).
    pub webapi_workers: u32,
    /// Kernel settings added to `boot.cfg` as `key=value` lines (the
    /// net-irq suite's `tick_hz=1`, `net.irq=off`).
    pub kernel_cfg: Vec<(String, String)>,
}

/// webapi's arguments in QEMU: under QEMU's user-mode network every client
/// on the host reaches the guest from one address (10.0.2.2), so the
/// per-peer limit (default 32) would cap the host as a whole; there the
/// connection limit (128) is the one that counts.
pub const QEMU_WEBAPI_ARGS: &[&str] = &["--max-per-peer", "128"];

/// A named blob in the bundle.
type Entry = (String, Vec<u8>);

impl BootConfig {
    pub fn run() -> Self {
        BootConfig::mode(Mode::Run)
    }

    /// Nothing but the mode.
    pub fn mode(mode: Mode) -> Self {
        BootConfig {
            mode,
            tests: None,
            wasm: Vec::new(),
            wasm_core: None,
            args: Vec::new(),
            env: Vec::new(),
            grant: String::new(),
            exit_with: false,
            soak_seconds: None,
            hostfwd: None,
            bench_quick: false,
            webapi_args: QEMU_WEBAPI_ARGS.iter().map(|a| a.to_string()).collect(),
            webapi_workers: 1,
            kernel_cfg: Vec::new(),
        }
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
        entries.push(("test/wasi_files.wasm".into(), std::fs::read(wasi_files_check(root)?)?));
        let data = wasi_files(root).join("data");
        for file in std::fs::read_dir(&data).with_context(|| format!("cannot list {}", data.display()))? {
            let file = file?;
            let name = file.file_name().into_string().map_err(|_| anyhow::anyhow!("non-UTF-8 file name"))?;
            entries.push((format!("files/data/{name}"), std::fs::read(file.path())?));
        }
        let mut spawn = Vec::new();
        for path in &self.wasm {
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            check_program_size(path, bytes.len())?;
            let name = bundle_name(path)?;
            check_unique(&name, path, &entries)?;
            spawn.push(name.clone());
            entries.push((name, bytes));
        }
        if !self.args.is_empty() {
            let args = encode_args(&self.args)?;
            entries.extend(spawn.iter().map(|name| (format!("args/{name}"), args.clone())));
        }
        if !self.env.is_empty() {
            // The same form as the arguments: each `K=V` ended by a NUL.
            let env = encode_args(&self.env)?;
            entries.extend(spawn.iter().map(|name| (format!("env/{name}"), env.clone())));
        }
        if spawn.is_empty() && self.hostfwd.is_some() && !self.webapi_args.is_empty() {
            entries.push(("args/webapi.wasm".into(), encode_args(&self.webapi_args)?));
        }
        let cfg = self.cfg(spawn);
        Ok((cfg, entries))
    }

    /// `boot.cfg` for a bundle that starts the user's programs `spawn`
    /// (bundle names; none: the demo).
    fn cfg(&self, mut spawn: Vec<String>) -> String {
        let programs: Vec<String> = spawn.iter().map(|s| s.trim_end_matches(".wasm").to_owned()).collect();
        let placed: Vec<String> = spawn
            .iter()
            .map(|s| match self.wasm_core {
                Some(k) => format!("{s}@{k}"),
                None => s.clone(),
            })
            .collect();
        if spawn.is_empty() {
            // The default: the token ring demo, and the web server when the
            // machine has a network card to serve on.
            if self.hostfwd.is_some() {
                spawn.push(match self.webapi_workers {
                    0 | 1 => "webapi.wasm".into(),
                    n => format!("webapi.wasm*{n}"),
                });
            }
            spawn.push("token_ring.wasm@all".into());
        }
        let listed = if placed.is_empty() { spawn.join(",") } else { placed.join(",") };
        let mut cfg = format!("mode={}\nspawn={}\n", self.mode.name(), listed);
        // A server that dies is started again by init (with back-off).
        // The web server needs the socket service and the counters; the
        // user's programs get what `--grant` names (docs/ABI.md, "Names
        // and namespaces").
        let webapi = |s: &&String| s.starts_with("webapi.wasm");
        if spawn.iter().any(|s| webapi(&s)) {
            cfg.push_str("restart=webapi.wasm\nnames.webapi.wasm=tcp,sysinfo\n");
        }
        if !self.grant.trim().is_empty() {
            for name in spawn.iter().filter(|s| !webapi(s)) {
                cfg.push_str(&format!("names.{name}={}\n", self.grant.trim()));
            }
        }
        if self.exit_with && !programs.is_empty() {
            cfg.push_str(&format!("exit_with={}\n", programs.join(",")));
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
        for (key, value) in &self.kernel_cfg {
            cfg.push_str(&format!("{key}={value}\n"));
        }
        cfg
    }
}

/// The longest `--wasm` file name: init reads `args/<name>` through a
/// 256-byte path buffer (`servers/init`).
const MAX_BUNDLE_NAME: usize = 200;

/// The bundle name of a `--wasm` program: its file name, ending `.wasm`.
/// The rule (README, "Your own Wasm program"): at most
/// [`MAX_BUNDLE_NAME`] bytes of UTF-8, and none of `,` and `@` (the
/// separators of `spawn=`), `=` and `#` (boot.cfg's), whitespace (init
/// trims it) or control characters (a line break would end the line).
fn bundle_name(path: &Path) -> Result<String> {
    let name = path.file_name().and_then(|n| n.to_str()).context("--wasm path has no UTF-8 file name")?;
    if let Some(c) = name.chars().find(|&c| matches!(c, ',' | '@' | '=' | '#') || c.is_whitespace() || c.is_control()) {
        bail!(
            "--wasm file name {name:?} contains {c:?}: a program's file name may not contain ',', '@', '=', '#', \
             whitespace or control characters (boot.cfg's separators); rename the file"
        );
    }
    let name = if name.ends_with(".wasm") { name.to_owned() } else { format!("{name}.wasm") };
    if name.len() > MAX_BUNDLE_NAME {
        bail!("--wasm file name {name:?} is {} bytes long: at most {MAX_BUNDLE_NAME}", name.len());
    }
    Ok(name)
}

/// The largest program init starts: the size of its static program
/// buffer, `MAX_PROGRAM` in `servers/init/src/lib.rs` (a test checks that
/// the two agree).
pub const MAX_PROGRAM: usize = 4 << 20;

/// A `--wasm` file init could not start is refused before anything boots.
fn check_program_size(path: &Path, len: usize) -> Result<()> {
    if len > MAX_PROGRAM {
        bail!(
            "--wasm {} is {len} bytes: init starts programs of at most {} MiB ({MAX_PROGRAM} bytes)",
            path.display(),
            MAX_PROGRAM >> 20
        );
    }
    Ok(())
}

/// A `--wasm` program must not share its bundle name with a program
/// already in the bundle (the platform's `init.wasm`, `webapi.wasm`, ...,
/// or another `--wasm` file): init would start the first one found.
fn check_unique(name: &str, path: &Path, entries: &[Entry]) -> Result<()> {
    if entries.iter().any(|(entry, _)| entry == name) {
        bail!(
            "--wasm {}: the boot bundle already has a program named {name:?} (the platform's own, or another \
             --wasm file); rename the file",
            path.display()
        );
    }
    Ok(())
}

/// Most arguments init passes a program (argv[0] is its name), and their
/// most bytes with one separator each (the SDK's `spawn_args`; see
/// `servers/init`).
const MAX_ARGS: usize = 31;
const MAX_ARG_BYTES: usize = 900;

/// The bundle file `args/<program>`: every argument exactly as given,
/// each ended by a NUL (so an empty argument survives too).
pub fn encode_args(args: &[String]) -> Result<Vec<u8>> {
    if args.len() > MAX_ARGS {
        bail!("{} arguments: at most {MAX_ARGS} reach a program in QEMU", args.len());
    }
    if let Some(arg) = args.iter().find(|a| a.contains('\0')) {
        bail!("argument {arg:?} contains a NUL byte");
    }
    let mut bytes = Vec::new();
    for arg in args {
        bytes.extend_from_slice(arg.as_bytes());
        bytes.push(0);
    }
    if bytes.len() > MAX_ARG_BYTES {
        bail!("the arguments take {} bytes: at most {MAX_ARG_BYTES} reach a program in QEMU", bytes.len());
    }
    Ok(bytes)
}

/// Where xtask keeps its artefacts.
pub fn out_dir(root: &Path) -> PathBuf {
    root.join("target/xtask")
}

/// The artefacts of one `cargo xtask run` (bundle, boot image, result
/// channel), in `target/xtask/run-<pid>/`, so that two runs in one
/// checkout never overwrite each other's image. Removed when dropped;
/// directories of runs whose process is gone are removed on creation.
pub struct RunDir {
    pub name: String,
    pub path: PathBuf,
}

impl RunDir {
    pub fn create(root: &Path) -> Result<RunDir> {
        remove_stale_run_dirs(&out_dir(root));
        let name = format!("run-{}", std::process::id());
        let path = out_dir(root).join(&name);
        std::fs::create_dir_all(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(RunDir { name, path })
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The pid in a run directory's name (`run-1234`).
fn run_dir_pid(name: &str) -> Option<u32> {
    name.strip_prefix("run-")?.parse().ok()
}

/// Removes `run-<pid>` directories under `dir` whose process has ended.
fn remove_stale_run_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(run_dir_pid) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
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
    cmd.args([
        "-Zbuild-std=core,alloc,compiler_builtins",
        "-Zbuild-std-features=compiler-builtins-mem",
        "-Zjson-target-spec",
    ]);
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

/// Copies the kernel ELF `elf` to `out` without its debug sections
/// (`llvm-objcopy --strip-debug` from the toolchain's llvm-tools).
fn strip_debug(elf: &Path, out: &Path) -> Result<PathBuf> {
    let rustc = |arg: &str| -> Result<String> {
        let out = Command::new("rustc").arg(arg).output().context("cannot run rustc")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let sysroot = rustc("--print=sysroot")?;
    let version = rustc("-vV")?;
    let host = version.lines().find_map(|l| l.strip_prefix("host: ")).context("rustc -vV names no host")?;
    let objcopy = Path::new(sysroot.trim()).join("lib/rustlib").join(host.trim()).join("bin/llvm-objcopy");
    let status = Command::new(&objcopy)
        .arg("--strip-debug")
        .arg(elf)
        .arg(out)
        .status()
        .with_context(|| format!("cannot run {} (component llvm-tools-preview)", objcopy.display()))?;
    if !status.success() {
        bail!("{} --strip-debug {} failed", objcopy.display(), elf.display());
    }
    Ok(out.to_owned())
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

/// Builds `tests/wasi-files` (a Rust std program for wasm32-wasip1 that
/// writes on the `/disk` preopen) and returns its path.
pub fn wasi_files_check(root: &Path) -> Result<PathBuf> {
    let target_dir = release_build(root, "tests/wasi-files", &["--target", "wasm32-wasip1"], "wasi-files")?;
    Ok(target_dir.join("wasm32-wasip1/release/wasi-files.wasm"))
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

/// Builds everything and returns the disk image for `opts`, with its
/// artefacts under `target/xtask/<name>/` (the kernel build shown: the
/// interactive commands).
pub fn image(root: &Path, name: &str, opts: &BuildOpts, config: &BootConfig) -> Result<PathBuf> {
    image_in(root, name, opts.profile(), opts.uefi, config, false)
}

/// Like [`image`], for callers that build many images and built the
/// kernel loudly once.
pub fn image_named(root: &Path, name: &str, profile: Profile, uefi: bool, config: &BootConfig) -> Result<PathBuf> {
    image_in(root, name, profile, uefi, config, true)
}

fn image_in(
    root: &Path,
    name: &str,
    profile: Profile,
    uefi: bool,
    config: &BootConfig,
    quiet: bool,
) -> Result<PathBuf> {
    let kernel = kernel_with(root, profile, quiet)?;
    let builder = image_builder(root)?;
    let bundle = bundle(root, name, config)?;
    let image = out_dir(root).join(name).join(if uefi { "uefi.img" } else { "bios.img" });
    // The image carries the kernel without its debug info (addresses in a
    // backtrace are looked up in the full ELF on the host): a fifth of the
    // size, and the BIOS loader reads it byte by byte.
    let kernel = strip_debug(&kernel, &out_dir(root).join(name).join("wasmos-kernel"))?;
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
    if !uefi {
        let bytes = std::fs::read(&image).with_context(|| format!("cannot read {}", image.display()))?;
        if let Err(e) = check_bios_image(&bytes) {
            let _ = std::fs::remove_file(&image);
            let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
            bail!(
                "{e}; this one holds the kernel ({} bytes without debug info) and the boot bundle ({} bytes). \
                 Boot it with --uefi, or bundle fewer or smaller --wasm programs",
                size(&kernel),
                size(&bundle)
            );
        }
    }
    Ok(image)
}

/// The most sectors the BIOS loader of bootloader 0.11.15 reads a FAT
/// partition of: its stage 2 (`fat.rs`, `Bpb::parse`) takes a zero
/// 16-bit sector count, which a FAT16 volume of 65536 sectors (32 MiB) or
/// more has, for FAT32 and reads the FAT size from the wrong bytes; it
/// then finds no kernel and halts with nothing on the serial port.
/// Measured: kernel + bundle of 25.3 MiB boot, 29.9 MiB (a 32 MiB
/// partition) hang. The image builder sizes the partition at
/// `((files + 64 KiB - 1) / 1 MiB + 2) MiB`, so the kernel, the bundle and
/// the bootloader's stages 3 and 4 together must stay below 30 MiB - 64 KiB.
const BIOS_FAT_MAX_SECTORS: u32 = 65535;

/// Refuses a BIOS image whose FAT partition the bootloader cannot read.
fn check_bios_image(image: &[u8]) -> Result<()> {
    // The MBR's second partition entry is the FAT boot partition
    // (bootloader's `mbr.rs`; the first is its second stage).
    let entry = image.get(0x1ce..0x1de).context("the BIOS image has no partition table")?;
    let lba = u32::from_le_bytes(entry[8..12].try_into().expect("4 bytes")) as usize;
    let sectors = u32::from_le_bytes(entry[12..16].try_into().expect("4 bytes"));
    let bpb = image.get(lba * 512..lba * 512 + 512).context("the BIOS image's FAT partition is missing")?;
    let sectors_16 = u16::from_le_bytes([bpb[19], bpb[20]]);
    if sectors > BIOS_FAT_MAX_SECTORS || sectors_16 == 0 {
        bail!(
            "the BIOS image is too large to boot: its FAT partition has {sectors} sectors ({} MiB), and the BIOS \
             loader (bootloader 0.11.15) reads at most {BIOS_FAT_MAX_SECTORS} (just under 32 MiB: kernel, bundle and \
             the loader's own stages together below 30 MiB - 64 KiB); beyond that it hangs without a word",
            sectors >> 11
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn arguments_are_kept_exactly() {
        let args = strings(&["a", "the \"second\" arg", "", " x\ty "]);
        let bytes = encode_args(&args).unwrap();
        assert_eq!(bytes, b"a\0the \"second\" arg\0\0 x\ty \0");
        // What servers/init does with it: split at the NULs.
        let text = std::str::from_utf8(&bytes).unwrap().strip_suffix('\0').unwrap();
        assert_eq!(text.split('\0').collect::<Vec<_>>(), args);
    }

    #[test]
    fn arguments_init_cannot_pass_are_refused() {
        assert!(encode_args(&strings(&["a\0b"])).is_err());
        assert!(encode_args(&vec!["x".to_owned(); MAX_ARGS + 1]).is_err());
        assert!(encode_args(&["y".repeat(MAX_ARG_BYTES)]).is_err());
        assert!(encode_args(&vec!["x".to_owned(); MAX_ARGS]).is_ok());
    }

    #[test]
    fn exit_with_names_the_users_programs() {
        let config = BootConfig { exit_with: true, ..BootConfig::run() };
        let cfg = config.cfg(vec!["hello.wasm".into(), "other.wasm".into()]);
        assert!(cfg.contains("spawn=hello.wasm,other.wasm\n"), "{cfg}");
        assert!(cfg.contains("exit_with=hello,other\n"), "{cfg}");
        // Without programs of the user's there is nothing to wait for.
        let cfg = config.cfg(Vec::new());
        assert!(cfg.contains("spawn=token_ring.wasm@all\n") && !cfg.contains("exit_with"), "{cfg}");
        assert!(!BootConfig::run().cfg(vec!["hello.wasm".into()]).contains("exit_with"));
    }

    #[test]
    fn namespaces_go_to_the_programs_that_need_them() {
        // The web server gets the socket service and the counters, the
        // demo nothing, the user's programs what --grant says.
        let web = BootConfig { hostfwd: Some((8080, 8080)), ..BootConfig::run() }.cfg(Vec::new());
        assert!(web.contains("names.webapi.wasm=tcp,sysinfo\n") && !web.contains("names.token_ring"), "{web}");
        let mine = BootConfig { grant: "tcp".into(), ..BootConfig::run() }.cfg(vec!["a.wasm".into(), "b.wasm".into()]);
        assert!(mine.contains("names.a.wasm=tcp\nnames.b.wasm=tcp\n"), "{mine}");
        assert!(!BootConfig::run().cfg(vec!["a.wasm".into()]).contains("names."));
    }

    #[test]
    fn bundle_names() {
        assert_eq!(bundle_name(Path::new("/x/prog.wasm")).unwrap(), "prog.wasm");
        assert_eq!(bundle_name(Path::new("prog")).unwrap(), "prog.wasm");
        assert!(bundle_name(Path::new("/dir,with@marks/prog.wasm")).is_ok(), "only the file name counts");
        assert_eq!(bundle_name(Path::new("héllo-1.2_x+y.wasm")).unwrap(), "héllo-1.2_x+y.wasm");
        for bad in ["a,b.wasm", "a@3.wasm", "a=b.wasm", "#a.wasm", "a b.wasm", " a.wasm", "a\nspawn=x.wasm", "a\tb"] {
            let err = bundle_name(Path::new(bad)).unwrap_err().to_string();
            assert!(err.contains("may not contain"), "{bad:?}: {err}");
        }
        assert!(bundle_name(Path::new(&"x".repeat(MAX_BUNDLE_NAME - 5))).is_ok());
        let err = bundle_name(Path::new(&"x".repeat(MAX_BUNDLE_NAME - 4))).unwrap_err().to_string();
        assert!(err.contains("at most 200"), "{err}");
    }

    #[test]
    fn programs_init_cannot_start_are_refused() {
        assert!(check_program_size(Path::new("big.wasm"), MAX_PROGRAM).is_ok());
        let err = check_program_size(Path::new("big.wasm"), MAX_PROGRAM + 1).unwrap_err().to_string();
        assert!(err.contains("at most 4 MiB"), "{err}");
        // The limit is init's buffer: the two must agree.
        let init = include_str!("../../servers/init/src/lib.rs");
        assert!(init.contains("const MAX_PROGRAM: usize = 4 << 20;"), "servers/init's MAX_PROGRAM changed");
    }

    /// An image whose FAT partition (MBR entry 2, at sector 64) has
    /// `sectors` sectors, formatted as fatfs does.
    fn bios_image(sectors: u32) -> Vec<u8> {
        let mut image = vec![0u8; 65 * 512];
        image[0x1ce + 8..0x1ce + 12].copy_from_slice(&64u32.to_le_bytes());
        image[0x1ce + 12..0x1ce + 16].copy_from_slice(&sectors.to_le_bytes());
        let sectors_16 = u16::try_from(sectors).unwrap_or(0);
        image[64 * 512 + 19..64 * 512 + 21].copy_from_slice(&sectors_16.to_le_bytes());
        image
    }

    #[test]
    fn bios_images_the_loader_cannot_read_are_refused() {
        // 31 MiB boots; 32 MiB (65536 sectors, a 16-bit count of 0) hangs.
        assert!(check_bios_image(&bios_image(31 << 11)).is_ok());
        assert!(check_bios_image(&bios_image(65535)).is_ok());
        let err = check_bios_image(&bios_image(32 << 11)).unwrap_err().to_string();
        assert!(err.contains("too large to boot") && err.contains("65536 sectors (32 MiB)"), "{err}");
        assert!(check_bios_image(&[0; 100]).is_err(), "no partition table");
    }

    #[test]
    fn bundle_names_are_unique() {
        let entries: Vec<Entry> = PROGRAMS.iter().map(|(name, _)| (name.to_string(), Vec::new())).collect();
        for taken in ["init.wasm", "webapi.wasm", "token_ring.wasm"] {
            let err = check_unique(taken, Path::new(taken), &entries).unwrap_err().to_string();
            assert!(err.contains("already has a program named"), "{err}");
        }
        assert!(check_unique("myapp.wasm", Path::new("myapp.wasm"), &entries).is_ok());
    }

    #[test]
    fn runs_get_directories_of_their_own() {
        let root = std::env::temp_dir().join(format!("xtask-rundir-{}", std::process::id()));
        // A directory left by a run whose process is gone (pid 0 is never
        // a process's), and one of a live process (this one's parent).
        let stale = out_dir(&root).join("run-0");
        let live = out_dir(&root).join(format!("run-{}", std::os::unix::process::parent_id()));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::create_dir_all(&live).unwrap();
        let dir = RunDir::create(&root).unwrap();
        assert_eq!(dir.name, format!("run-{}", std::process::id()));
        assert!(dir.path.is_dir() && !stale.exists() && live.exists());
        let path = dir.path.clone();
        drop(dir);
        assert!(!path.exists(), "a run's directory goes with it");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
