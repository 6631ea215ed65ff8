//! Disk images for the file server: `cargo xtask disk new|put|get|ls`,
//! the default image `cargo xtask run` attaches (made on first use), and
//! the storage suites of `cargo xtask test` (QEMU and hosted).
//!
//! Images are raw FAT32 volumes (no partition table), made and edited on
//! the host with the same `fatfs` crate the file server runs, so a fresh
//! machine needs nothing else; Linux mounts them too (`mount -o loop`), and
//! `fsck.fat` (Debian's dosfstools) checks them.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

/// Size of a new image unless told: FAT32 with 512-byte clusters.
pub const DEFAULT_MIB: u64 = 64;

#[derive(Args)]
pub struct DiskOpts {
    /// The image (default: target/xtask/disk.img, the one `run` attaches).
    #[arg(long, value_name = "FILE", global = true)]
    disk: Option<PathBuf>,
    #[command(subcommand)]
    op: DiskOp,
}

#[derive(Subcommand)]
enum DiskOp {
    /// Make a new, empty FAT32 image (replacing the file).
    New {
        /// Size in MiB (at least 33: FAT32 needs 65525 clusters).
        #[arg(long, default_value_t = DEFAULT_MIB)]
        size: u64,
    },
    /// Copy a host file onto the image (DEST defaults to its file name).
    Put { file: PathBuf, dest: Option<String> },
    /// Copy a file off the image (to DEST, default: its name, here).
    Get { src: String, dest: Option<PathBuf> },
    /// List a directory of the image.
    Ls { dir: Option<String> },
}

/// `target/xtask/disk.img`.
pub fn default_path(root: &Path) -> PathBuf {
    crate::build::out_dir(root).join("disk.img")
}

/// The image `run` attaches: `--disk FILE`, or the default one, made now
/// if it does not exist yet.
pub fn for_run(root: &Path, disk: Option<&Path>) -> Result<PathBuf> {
    match disk {
        Some(d) => {
            if !d.exists() {
                bail!("--disk {}: no such file (make one with `cargo xtask disk --disk {0} new`)", d.display());
            }
            Ok(std::path::absolute(d)?)
        }
        None => {
            let path = default_path(root);
            if !path.exists() {
                create(&path, DEFAULT_MIB)?;
                eprintln!(
                    "xtask: made a {DEFAULT_MIB} MiB FAT32 disk at {} (cargo xtask disk put FILE adds files)",
                    path.display()
                );
            }
            Ok(path)
        }
    }
}

/// Claims `disk` for one run: two machines writing one FAT image would
/// corrupt it, so a second `cargo xtask run` on the same disk stops with a
/// plain message. The claim (an advisory lock) lasts as long as the file.
pub fn claim(disk: &Path) -> Result<std::fs::File> {
    let file = std::fs::File::open(disk).with_context(|| format!("cannot open {}", disk.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "the disk {} is in use by another `cargo xtask run`: give this one its own with --disk FILE \
             (`cargo xtask disk --disk FILE new` makes one)",
            disk.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", disk.display())),
    }
}

/// Makes a FAT32 image of `mib` MiB at `path`.
pub fn create(path: &Path, mib: u64) -> Result<()> {
    if mib < 33 {
        bail!("a FAT32 image needs at least 33 MiB");
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
    file.set_len(mib << 20)?;
    let opts = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(512)
        .volume_label(*b"WASMOS     ");
    fatfs::format_volume(file, opts).with_context(|| format!("formatting {}", path.display()))?;
    Ok(())
}

fn mount(path: &Path) -> Result<fatfs::FileSystem<std::fs::File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    fatfs::FileSystem::new(file, fatfs::FsOptions::new())
        .with_context(|| format!("{} holds no FAT volume", path.display()))
}

/// Writes `bytes` to `dest` on the image (making parent directories).
pub fn put_bytes(image: &Path, dest: &str, bytes: &[u8]) -> Result<()> {
    let fs = mount(image)?;
    let dest = dest.trim_matches('/');
    let mut dir = fs.root_dir();
    if let Some((parents, _)) = dest.rsplit_once('/') {
        for name in parents.split('/').filter(|n| !n.is_empty()) {
            dir = dir.create_dir(name)?;
        }
    }
    let mut file = fs.root_dir().create_file(dest).with_context(|| format!("cannot create {dest}"))?;
    file.truncate()?;
    file.write_all(bytes)?;
    drop(file);
    drop(dir);
    fs.unmount()?;
    Ok(())
}

/// Reads `src` off the image.
pub fn get_bytes(image: &Path, src: &str) -> Result<Vec<u8>> {
    let fs = mount(image)?;
    let mut out = Vec::new();
    fs.root_dir()
        .open_file(src.trim_matches('/'))
        .with_context(|| format!("no file {src} on the disk"))?
        .read_to_end(&mut out)?;
    Ok(out)
}

/// `fsck.fat -n` (read-only check): `Ok` if it finds nothing wrong.
pub fn fsck(image: &Path) -> Result<(), String> {
    // /usr/sbin is not on every user's PATH.
    let tool = if Path::new("/usr/sbin/fsck.fat").exists() { "/usr/sbin/fsck.fat" } else { "fsck.fat" };
    let out = Command::new(tool).arg("-n").arg(image).output();
    match out {
        Err(e) => Err(format!("cannot run fsck.fat ({e}): apt-get install dosfstools")),
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!("fsck.fat -n: {}", String::from_utf8_lossy(&o.stdout).trim().replace('\n', " | "))),
    }
}

pub fn command(root: &Path, opts: &DiskOpts) -> Result<()> {
    let image = opts.disk.clone().unwrap_or_else(|| default_path(root));
    match &opts.op {
        DiskOp::New { size } => {
            create(&image, *size)?;
            println!("{}: {size} MiB FAT32", image.display());
        }
        DiskOp::Put { file, dest } => {
            if !image.exists() {
                for_run(root, opts.disk.as_deref())?;
            }
            let name = file.file_name().and_then(|n| n.to_str()).context("FILE has no name")?;
            let dest = dest.clone().unwrap_or_else(|| name.to_owned());
            put_bytes(&image, &dest, &std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?)?;
            println!("{} -> {}:{dest}", file.display(), image.display());
        }
        DiskOp::Get { src, dest } => {
            let bytes = get_bytes(&image, src)?;
            let dest = dest.clone().unwrap_or_else(|| PathBuf::from(src.rsplit('/').next().unwrap_or(src)));
            std::fs::write(&dest, bytes)?;
            println!("{}:{src} -> {}", image.display(), dest.display());
        }
        DiskOp::Ls { dir } => {
            let fs = mount(&image)?;
            let d = match dir.as_deref().map(|d| d.trim_matches('/')).filter(|d| !d.is_empty()) {
                Some(d) => fs.root_dir().open_dir(d)?,
                None => fs.root_dir(),
            };
            for e in d.iter() {
                let e = e?;
                let name = e.file_name();
                if name == "." || name == ".." {
                    continue;
                }
                let kind = if e.is_dir() { "dir " } else { "file" };
                println!("{kind} {:>10}  {name}", if e.is_dir() { 0 } else { e.len() });
            }
        }
    }
    Ok(())
}

/// Expected contents, shared with `servers/fs-check`.
const HOST_TEXT: &[u8] = b"written on the host\n";
const GUEST_TEXT: &[u8] = b"written by the guest, synced\n";

/// What `tests/wasi-files` writes and syncs in `/disk/wasi.txt`.
const WASI_TEXT: &[u8] = b"written through WASI, synced\n";

/// Whether the image holds the file `tests/wasi-files` synced.
fn wasi_file(image: &Path) -> Result<Option<u64>, String> {
    match get_bytes(image, "wasi.txt").map_err(|e| format!("{e:#}"))? {
        b if b == WASI_TEXT => Ok(None),
        b => Err(format!("wasi.txt holds {:?}", String::from_utf8_lossy(&b))),
    }
}

/// Runs `tests/wasi-files` under wasmtime (its Python bindings, `pip
/// install wasmtime`) with the same environment, `tests/wasi-check` as its
/// read-only `/` and an empty directory as `/disk`, and compares its
/// output and exit code with the hosted run's. wasmtime answers EPERM where
/// WasmOS answers EROFS (the read-only tree) and ENOTCAPABLE (a path out of
/// a preopen); the program is told which (`WASI_FILES_READ_ONLY_ERRNO`)
/// and prints the same lines either way. Without wasmtime: skipped, said.
fn differential(root: &Path, dir: &Path, hosted: &str) -> Result<Option<u64>, String> {
    const RUNNER: &str = r#"
import sys, wasmtime
wasm, root, disk = sys.argv[1:4]
engine = wasmtime.Engine()
linker = wasmtime.Linker(engine)
linker.define_wasi()
store = wasmtime.Store(engine)
cfg = wasmtime.WasiConfig()
cfg.argv = ["wasi-files"]
cfg.env = [tuple(kv.split("=", 1)) for kv in sys.argv[4:]]
cfg.inherit_stdout()
cfg.preopen_dir(root, "/", False)
cfg.preopen_dir(disk, "/disk")
store.set_wasi(cfg)
instance = linker.instantiate(store, wasmtime.Module.from_file(engine, wasm))
try:
    instance.exports(store)["_start"](store)
    code = 0
except wasmtime.ExitTrap as e:
    code = e.code
sys.stdout.flush()
sys.exit(code)
"#;
    let probe = Command::new("python3").args(["-c", "import wasmtime"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("  storage-hosted::wasi_files_same_as_wasmtime: skipped (no wasmtime: pip install wasmtime)");
        return Ok(None);
    }
    let wasm = crate::build::wasi_files_check(root).map_err(|e| format!("{e:#}"))?;
    let disk = dir.join("wasmtime-disk");
    let _ = std::fs::remove_dir_all(&disk);
    std::fs::create_dir_all(&disk).map_err(|e| e.to_string())?;
    let runner = dir.join("wasmtime_run.py");
    std::fs::write(&runner, RUNNER).map_err(|e| e.to_string())?;
    let out = Command::new("python3")
        .arg(&runner)
        .arg(&wasm)
        .arg(crate::build::wasi_files(root))
        .arg(&disk)
        .args(["WASI_FILES_EXPECT_ENV=from the host", "WASI_FILES_GREETING=from the host", "WASMOS_CORES=2"])
        .arg("WASI_FILES_READ_ONLY_ERRNO=63")
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let theirs = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let last = theirs.lines().last().unwrap_or("");
        return Err(format!("under wasmtime: exit {} ({last}) {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    // The program's lines (the file server's stdout shares the hosted one).
    let lines = |text: &str| -> Vec<String> {
        let own = |l: &&str| l.starts_with("ok ") || l.starts_with("FAILED ") || l.starts_with("wasi-files: ");
        text.lines().filter(own).map(str::to_owned).collect()
    };
    let (ours, theirs) = (lines(hosted), lines(&theirs));
    let differ: Vec<String> =
        ours.iter().zip(&theirs).filter(|(a, b)| a != b).map(|(a, b)| format!("{a:?} vs {b:?}")).collect();
    match (differ.first(), ours.len() == theirs.len()) {
        (None, true) => Ok(None),
        (Some(first), _) => Err(format!("{} lines differ, first: {first} (WasmOS vs wasmtime)", differ.len())),
        (None, false) => Err("wasmtime printed another number of lines".into()),
    }
}

/// A fresh test disk: 40 MiB FAT32, `host.txt`, and a filler that leaves
/// about 1 MiB free so that the full-disk check is quick.
fn test_disk(path: &Path) -> Result<()> {
    create(path, 40)?;
    put_bytes(path, "host.txt", HOST_TEXT)?;
    let fs = mount(path)?;
    let free = fs.stats()?.free_clusters() as u64 * 512;
    drop(fs);
    put_bytes(path, "filler.bin", &vec![0xf1; free.saturating_sub(1 << 20) as usize])
}

/// The storage suite in QEMU: two boots of one disk prepared on the host
/// (the in-kernel `storage::` tests drive `fs.wasm` and `fs_check.wasm`),
/// with the host checking the disk in between and after.
pub fn qemu_suite(
    root: &Path,
    profile: crate::build::Profile,
    tally: &mut impl FnMut(&str, Result<Option<u64>, String>),
) -> Result<()> {
    use crate::build::BootConfig;
    use crate::qemu::{self, Machine};
    use wasmos_tests::protocol::Report;
    use wasmos_tests::suites::{self, Expect, Firmware, Suite};
    println!("==> suite storage-qemu (virtio-blk, FAT32 made on the host, two boots)");
    let started = Instant::now();
    let dir = crate::build::out_dir(root).join("storage-qemu");
    std::fs::create_dir_all(&dir)?;
    let image_path = dir.join("disk.img");
    test_disk(&image_path)?;
    for boot in ["first", "second"] {
        let name = format!("storage-{boot}");
        let config = BootConfig { tests: Some(format!("storage::{boot}_boot")), ..BootConfig::mode(crate::Mode::Test) };
        let image = crate::build::image_named(root, &name, profile, false, &config)?;
        let machine = Machine {
            image,
            uefi: false,
            smp: 2,
            mem: "512M".into(),
            accel: crate::Accel::Tcg,
            http_port: None,
            rdtscp: false,
            disk: Some(image_path.clone()),
        };
        let (exit, files) = qemu::run_captured(&machine, &dir.join(boot), Duration::from_secs(240), |_| {})?;
        let report = Report::parse(&String::from_utf8_lossy(&std::fs::read(&files.results).unwrap_or_default()));
        let log = String::from_utf8_lossy(&std::fs::read(&files.log).unwrap_or_default()).into_owned();
        let suite = Suite {
            name: "storage-qemu",
            firmware: Firmware::Bios,
            smp: 2,
            mode: "test",
            expect: Expect::KernelTests,
            timeout_secs: 240,
        };
        let checks = suites::evaluate(&suite, &report, &log, exit);
        if checks.iter().any(|c| !c.passed()) {
            println!("  kernel log: {}", files.log.display());
        }
        for check in checks.into_iter().filter(|c| !c.name.ends_with("::boot")) {
            let name = check.name.replace("storage-qemu::clean_exit", &format!("storage-qemu::{boot}_boot_clean_exit"));
            tally(&name, check.result);
        }
        tally(&format!("storage-qemu::fsck_after_{boot}_boot"), fsck(&image_path).map(|()| None));
        if boot == "first" {
            let guest = get_bytes(&image_path, "guest.txt").map_err(|e| format!("{e:#}"));
            let result = match guest {
                Ok(b) if b == GUEST_TEXT => Ok(None),
                Ok(b) => Err(format!("guest.txt holds {:?}", String::from_utf8_lossy(&b))),
                Err(e) => Err(e),
            };
            tally("storage-qemu::guest_file_read_on_the_host", result);
            tally("storage-qemu::wasi_file_read_on_the_host", wasi_file(&image_path));
        }
    }
    println!("  suite storage-qemu: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The same file server binary under `wasmos-hosted --disk`: two runs
/// (two "boots") of one image, checked by the host in between and after.
pub fn hosted_suite(root: &Path, tally: &mut impl FnMut(&str, Result<Option<u64>, String>)) -> Result<()> {
    println!("==> suite storage-hosted (the same fs.wasm over a disk image file)");
    let started = Instant::now();
    crate::build::servers(root)?;
    let binary = crate::build::hosted(root)?;
    let dir = crate::build::out_dir(root).join("storage-hosted");
    std::fs::create_dir_all(&dir)?;
    let image = dir.join("disk.img");
    test_disk(&image)?;
    let fs_wasm = crate::build::program_path(root, "wasmos_fs.wasm");
    let check = crate::build::program_path(root, "fs_check.wasm");
    let run = |phases: &[&str], fs_args: &[&str]| -> Result<Option<u64>, String> {
        let mut cmd = Command::new(&binary);
        cmd.args(["--cores", "2", "--timeout", "120", "--grant", "fs", "--disk"]);
        cmd.arg(&image).arg("--fs-server").arg(&fs_wasm);
        for a in fs_args {
            cmd.arg(format!("--fs-arg={a}"));
        }
        // One program per phase, one after the other: `--` args are shared,
        // so each phase is its own run.
        let _ = phases;
        cmd.arg(&check).arg("--").args(phases);
        let out = cmd.output().map_err(|e| format!("cannot run wasmos-hosted: {e}"))?;
        // The programs' output (stdout) and the log (stderr), both shown on failure.
        let output = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
        let want = format!("fs_check: {} ok", phases[0]);
        if out.status.success() && output.contains(&want) {
            Ok(None)
        } else {
            Err(format!(
                "exit {}: {}",
                out.status,
                output.lines().filter(|l| l.contains("fs")).collect::<Vec<_>>().join(" | ")
            ))
        }
    };
    tally("storage-hosted::first_run", run(&["first"], &[]));
    tally("storage-hosted::fsck_after_first_run", fsck(&image).map(|()| None));
    let guest = get_bytes(&image, "guest.txt").map_err(|e| format!("{e:#}"));
    tally(
        "storage-hosted::guest_file_read_on_the_host",
        guest.and_then(|b| if b == GUEST_TEXT { Ok(None) } else { Err("wrong guest.txt".into()) }),
    );
    tally("storage-hosted::second_run_sees_the_first", run(&["second"], &[]));
    tally("storage-hosted::fsck_after_second_run", fsck(&image).map(|()| None));
    // The WASI program the QEMU suite runs, the same binary, on the same
    // disk: WASI file calls to the file server, from `/disk`.
    let wasi = crate::build::wasi_files_check(root).map_err(|e| format!("{e:#}"));
    let wasi_run = wasi.and_then(|wasm| {
        let out = Command::new(&binary)
            .args(["--cores", "2", "--timeout", "120", "--grant", "fs", "--disk"])
            .arg(&image)
            .arg("--fs-server")
            .arg(&fs_wasm)
            .arg("--files")
            .arg(crate::build::wasi_files(root))
            .args(["--env", "WASI_FILES_EXPECT_ENV=from the host", "--env", "WASI_FILES_GREETING=from the host"])
            .arg(&wasm)
            .output()
            .map_err(|e| format!("cannot run wasmos-hosted: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && stdout.contains("wasi-files: all checks passed") {
            Ok(stdout)
        } else {
            let failed: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("ok ")).collect();
            Err(format!("exit {}: {}", out.status, failed.join(" | ")))
        }
    });
    let hosted_output = wasi_run.as_ref().ok().cloned();
    tally("storage-hosted::wasi_program_writes_files", wasi_run.map(|_| None));
    tally("storage-hosted::fsck_after_the_wasi_program", fsck(&image).map(|()| None));
    tally("storage-hosted::wasi_file_read_on_the_host", wasi_file(&image));
    if let Some(hosted) = hosted_output {
        tally("storage-hosted::wasi_files_same_as_wasmtime", differential(root, &dir, &hosted));
    }
    println!("  suite storage-hosted: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
