//! Storage tests: the virtio-blk block service, and the file server
//! (`fs.wasm`) over it, driven through the test client `fs_check.wasm`
//! (`servers/fs-check`, whose phases are listed there). They need the
//! disk `cargo xtask test` prepares on the host (suite `storage-qemu`), so
//! they run only when the filter names them (`tests=storage::...`), and
//! the host checks the disk between and after the two boots (`fsck.fat`,
//! the guest's file read back with fatfs).

use alloc::format;
use alloc::string::String;

use wasmos_ipc::abi::ExitReason;
use wasmos_ipc::ids::TaskId;

use super::wasm::{exited, wait};
use super::{Ctx, Test, TestResult};
use crate::ensure;

pub const TESTS: &[Test] = &[
    Test { name: "storage::first_boot::block_protocol", run: block_protocol },
    Test { name: "storage::first_boot::file_server_round_trips", run: file_server_round_trips },
    Test { name: "storage::first_boot::server_killed_mid_write", run: server_killed_mid_write },
    Test { name: "storage::first_boot::restarted_server_finds_the_synced_state", run: restarted_server },
    Test { name: "storage::first_boot::wasi_program_writes_files", run: wasi_files },
    Test { name: "storage::second_boot::synced_files_survive_a_reboot", run: second_boot },
];

/// The block service, started by the first test that needs it.
static BLK: spin::Mutex<Option<TaskId>> = spin::Mutex::new(None);
/// The file server now running.
static FS: spin::Mutex<Option<TaskId>> = spin::Mutex::new(None);

/// The name the file server traps in the middle of a write to (armed for
/// the first server of the first boot only).
const CRASH_FILE: &str = "partial.bin";

fn blk(ctx: &Ctx) -> Result<TaskId, String> {
    let mut blk = BLK.lock();
    if let Some(id) = *blk {
        return Ok(id);
    }
    let info = crate::blk::start(&ctx.sys).ok_or("no virtio-blk disk (the storage suite attaches one)")?;
    log::info!("storage: virtio-blk {} sectors at {}", info.sectors, info.pci);
    *blk = Some(info.service);
    Ok(info.service)
}

fn bundled<'a>(ctx: &Ctx, entry: &str) -> Result<&'a [u8], String> {
    ctx.bundle.and_then(|b| b.get(entry)).ok_or_else(|| format!("{entry} missing from the boot bundle"))
}

/// Runs fs_check phase `phase` (with the block capability if `raw`) and
/// waits for it to pass.
fn check(ctx: &mut Ctx, phases: &[&str], raw: bool) -> TestResult {
    let wasm = bundled(ctx, "test/fs_check.wasm")?;
    let blk = blk(ctx)?;
    let mut ids = alloc::vec::Vec::new();
    for phase in phases {
        let caps: &[TaskId] = if raw { &[blk] } else { &[] };
        let id = ctx.sys.spawn_with_caps(wasm, &["fs_check", phase], 1.min(ctx.sys.cores() as i32 - 1), caps);
        ids.push(id.map_err(|e| format!("spawning fs_check {phase}: {}", e.name()))?);
    }
    let exits = wait(ctx, &ids, 120);
    for (phase, exit) in phases.iter().zip(exits) {
        ensure!(exit == exited(0), "fs_check {phase} ended {exit:?} (its output is in the log)");
    }
    Ok(())
}

fn start_fs(ctx: &Ctx, args: &[&str]) -> TestResult {
    let wasm = bundled(ctx, crate::blk::FS_WASM)?;
    let id = crate::blk::start_file_server(&ctx.sys, wasm, blk(ctx)?, args).map_err(|e| format!("fs: {}", e.name()))?;
    *FS.lock() = Some(id);
    Ok(())
}

fn block_protocol(ctx: &mut Ctx) -> TestResult {
    check(ctx, &["block"], true)
}

fn file_server_round_trips(ctx: &mut Ctx) -> TestResult {
    start_fs(ctx, &["--crash-on-write-to", CRASH_FILE])?;
    check(ctx, &["owner", "thief"], false)?;
    check(ctx, &["first"], false)
}

fn server_killed_mid_write(ctx: &mut Ctx) -> TestResult {
    let fs = FS.lock().ok_or("no file server running")?;
    check(ctx, &["crash"], false)?;
    let exit = wait(ctx, &[fs], 10)[0];
    ensure!(exit.is_some_and(|e| e.reason == ExitReason::Unreachable), "the armed file server ended {exit:?}");
    Ok(())
}

fn restarted_server(ctx: &mut Ctx) -> TestResult {
    start_fs(ctx, &[])?;
    check(ctx, &["after-crash"], false)
}

fn second_boot(ctx: &mut Ctx) -> TestResult {
    start_fs(ctx, &[])?;
    check(ctx, &["second"], false)
}

/// The Rust std program `tests/wasi-files` on the `/disk` preopen (WASI
/// file calls made to the file server); it exits 0 when every check
/// passes (environment variables included), and leaves `wasi.txt`,
/// synced, for the host to read.
fn wasi_files(ctx: &mut Ctx) -> TestResult {
    let wasm = bundled(ctx, "test/wasi_files.wasm")?;
    // A WASI task gets `/disk` if `fs` is registered when it starts.
    let sys = ctx.sys.clone();
    let up = ctx.sched.run_until(
        10_000_000_000,
        || sys.has_service(wasmos_ipc::fs::SERVICE),
        |s, _| crate::tasks::idle(&sys, s),
    );
    ensure!(up, "the file server did not register fs");
    let env = ["WASI_FILES_EXPECT_ENV=from the kernel", "WASI_FILES_GREETING=from the kernel"];
    let core = 1.min(ctx.sys.cores() as i32 - 1);
    let id = ctx.sys.spawn_env(wasm, &["wasi-files"], &env, core, wasmos_ipc::names::Namespace::ALL);
    let id = id.map_err(|e| format!("spawning wasi-files: {}", e.name()))?;
    let exit = wait(ctx, &[id], 120)[0];
    ensure!(exit == exited(0), "wasi-files ended {exit:?} (its output is in the log)");
    Ok(())
}
