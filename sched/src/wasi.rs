//! WASI preview 1 (`wasi_snapshot_preview1`) on top of WasmOS, so programs
//! built with `cargo build --target wasm32-wasip1` (or clang for
//! wasm32-wasi) run unmodified.
//!
//! Implemented (everything else returns `ENOSYS` (52) instead of failing
//! to link):
//!
//! | call | WasmOS behaviour |
//! |---|---|
//! | `args_get`, `args_sizes_get` | the argv given at spawn (argv[0] = task name) |
//! | `environ_get`, `environ_sizes_get` | `WASMOS_CORE`, `WASMOS_CORES`, `WASMOS_VERSION`, then what the parent gave (`task_spawn_env`: `boot.cfg`'s `env/<program>`, `--env K=V`) |
//! | `fd_write` on 1, 2 | the console (one record per call) |
//! | `fd_read` on 0 | the console's input ([`console`]: COM1 by interrupt in the kernel, the process's stdin hosted): what is there (a short read, at most 1024 bytes), else the task blocks until at least one byte comes; 0 bytes at the end of input. One task owns stdin, the first that reads it, until it ends or closes fd 0; another reader meanwhile gets `EBUSY` |
//! | `fd_prestat_get`, `fd_prestat_dir_name` | fd 3 is the preopened read-only directory `/` (the bundle's `files/`); fd 4 the writable `/disk`, when the file server `fs` runs and the task's namespace holds it when it starts |
//! | `path_open`, `fd_read`, `fd_pread`, `fd_seek`, `fd_tell`, `fd_close`, `fd_filestat_get`, `path_filestat_get`, `fd_fdstat_get` on `/` | read-only files from the boot bundle (`files/<path>`); creating, truncating, `path_create_directory`, `path_unlink_file`, `path_remove_directory`, `path_rename` there are `EROFS` |
//! | on `/disk` ([`disk`]): `path_open` (`O_CREAT`, `O_EXCL`, `O_TRUNC`, `O_DIRECTORY`, `FDFLAGS_APPEND`; rights as WASI defines them), `fd_read`, `fd_write`, `fd_pread`, `fd_pwrite`, `fd_seek`, `fd_tell`, `fd_close`, `fd_readdir`, `path_create_directory`, `path_remove_directory`, `path_unlink_file`, `path_rename` (within one directory descriptor, else `ENOTSUP`), `path_filestat_get`, `fd_filestat_get`, `fd_filestat_set_size`, `fd_sync`, `fd_datasync`, `fd_fdstat_get`, `fd_fdstat_set_flags` (`APPEND` only) | file-protocol calls to `fs` made on the task's behalf (the task blocks like in `ipc_call`); the errno is the protocol's (`wasmos_ipc::fs::FsError::errno`) |
//! | `fd_renumber` | moves a descriptor, closing the target (both must be open: `EBADF`) |
//! | `path_link`, `path_symlink`; `path_readlink` | FAT has no links: `ENOTSUP`; `EINVAL` (nothing is a symbolic link) |
//! | `clock_time_get`, `clock_res_get` | monotonic and realtime both count from boot (no RTC yet) |
//! | `random_get` | the platform's generator (see [`crate::Platform::fill_random`]) |
//! | `sched_yield` | the task goes to the back of its core's ready queue |
//! | `poll_oneoff` | clock subscriptions: sleeps until the earliest (relative or absolute); FD_READ on stdin (fd 0): ready when input (or its end) is there, `nbytes` 1 ("at least one"), combined with clocks (the first that is ready is the one event); FD_READ on other descriptors and FD_WRITE: `ENOSYS` |
//! | `proc_exit` | ends the task with the code |
//!
//! Limits: at most [`MAX_FDS`] descriptors (`EMFILE`), the table's growth
//! charged to the task's memory budget (`ENOMEM`); a read or write moves at
//! most one file-protocol message (`fs::MAX_READ`, `fs::MAX_WRITE`) and
//! looks at most at 1024 iovecs: short reads and writes, which WASI allows.

mod console;
mod disk;

use alloc::string::String;
use alloc::vec::Vec;

use wasmi::{Caller, Error, FuncType, Linker, Val};
use wasmos_ipc::caps::SlotBudget;

use crate::platform::Stream;
use crate::task::{self, Blocked, TaskData, Wait};

pub use crate::imports::WASI as MODULE;
pub(crate) use console::{console_fill, poll_console_event};
pub(crate) use disk::{Next, file_reply};

// Errno values of WASI preview 1.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EFBIG: i32 = 22;
const EINVAL: i32 = 28;
const EIO: i32 = 29;
const EISDIR: i32 = 31;
const EMFILE: i32 = 33;
const ENAMETOOLONG: i32 = 37;
const ENOENT: i32 = 44;
const ENOMEM: i32 = 48;
pub const ENOSYS: i32 = 52;
const ENOTDIR: i32 = 54;
const ENOTSUP: i32 = 58;
const EROFS: i32 = 69;
const ESPIPE: i32 = 70;
const EXDEV: i32 = 75;
const ENOTCAPABLE: i32 = 76;

/// The preopened read-only bundle directory's descriptor.
const ROOT_FD: i32 = 3;
/// The preopened disk directory's descriptor (when there is a disk).
const DISK_FD: i32 = 4;
/// Its name.
const DISK_NAME: &str = "/disk";
/// Most descriptors a task may have open (`EMFILE` beyond).
pub const MAX_FDS: usize = 128;

/// One open descriptor of a WASI task.
#[derive(Debug, Clone)]
pub(crate) enum Fd {
    Stdin,
    Stdout,
    Stderr,
    Root,
    /// A boot-bundle file, read through the platform on every access.
    File {
        entry: String,
        size: u64,
        pos: u64,
    },
    /// A file or directory on the disk (`disk`).
    Disk(disk::DiskFd),
}

/// Per-task WASI state.
pub(crate) struct Wasi {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Slots beyond the first [`FIRST_SLOTS`] are charged to the task's
    /// memory budget as the table grows; at most [`MAX_FDS`].
    pub fds: Vec<Option<Fd>>,
    /// The rest of the file call the task waits for (`Wait::File`).
    pending: Option<disk::Pending>,
    /// Bytes of `pending` charged to the task's memory budget.
    held: usize,
}

/// Descriptor slots every WASI task has (stdio and the preopens), not
/// charged: they are part of the task's fixed cost.
const FIRST_SLOTS: usize = 8;

impl Wasi {
    /// `disk`: the task gets the writable preopen [`DISK_NAME`].
    pub fn new(args: Vec<String>, env: Vec<String>, disk: bool) -> Wasi {
        let mut fds = Vec::with_capacity(FIRST_SLOTS);
        fds.extend([Some(Fd::Stdin), Some(Fd::Stdout), Some(Fd::Stderr), Some(Fd::Root)]);
        if disk {
            fds.push(Some(Fd::Disk(disk::DiskFd::root())));
        }
        Wasi { args, env, fds, pending: None, held: 0 }
    }

    /// Close requests for the disk handles of a task that ended.
    pub fn orphaned_handles(&self) -> impl Iterator<Item = wasmos_ipc::message::Payload> + '_ {
        disk::orphaned_handles(self)
    }
}

/// A free descriptor slot (the lowest), growing the table if needed; the
/// growth is charged to the task's memory budget.
fn free_slot(c: &mut Ctx) -> Result<usize, i32> {
    let data = c.data_mut();
    let w = data.wasi.as_mut().ok_or(ENOSYS)?;
    if let Some(i) = w.fds.iter().position(Option::is_none) {
        return Ok(i);
    }
    if w.fds.len() >= MAX_FDS {
        return Err(EMFILE);
    }
    if w.fds.len() == w.fds.capacity() {
        let grow = w.fds.capacity().max(FIRST_SLOTS).min(MAX_FDS - w.fds.len());
        let bytes = grow * core::mem::size_of::<Option<Fd>>();
        if !data.limits.try_charge(bytes) {
            return Err(ENOMEM);
        }
        if w.fds.try_reserve_exact(grow).is_err() {
            data.limits.refund(bytes);
            return Err(ENOMEM);
        }
    }
    w.fds.push(None);
    Ok(w.fds.len() - 1)
}

/// A path argument: UTF-8, at most `fs::MAX_PATH` bytes.
fn path_arg(c: &Ctx, ptr: i32, len: i32) -> Result<String, i32> {
    if len as usize > wasmos_ipc::fs::MAX_PATH {
        return Err(ENAMETOOLONG);
    }
    String::from_utf8(get(c, ptr, len)?).map_err(|_| EINVAL)
}

/// The descriptor `fd` (a copy), or `EBADF`.
fn fd_of(c: &mut Ctx, fd: i32) -> Result<Fd, i32> {
    wasi(c).and_then(|w| w.fds.get(fd as usize).cloned().flatten()).ok_or(EBADF)
}

type Ctx<'a> = Caller<'a, TaskData>;

fn wasi<'a>(c: &'a mut Ctx) -> Option<&'a mut Wasi> {
    c.data_mut().wasi.as_mut()
}

fn put_u32(c: &mut Ctx, ptr: i32, v: u32) -> Result<(), i32> {
    task::write_bytes(c, ptr as u32, &v.to_le_bytes()).map_err(|_| EFAULT)
}

fn put_u64(c: &mut Ctx, ptr: i32, v: u64) -> Result<(), i32> {
    task::write_bytes(c, ptr as u32, &v.to_le_bytes()).map_err(|_| EFAULT)
}

fn get(c: &Ctx, ptr: i32, len: i32) -> Result<Vec<u8>, i32> {
    task::read_bytes(c, ptr, len).map_err(|_| EFAULT)
}

fn errno(r: Result<(), i32>) -> Result<i32, Error> {
    Ok(r.err().unwrap_or(SUCCESS))
}

/// Writes a list of strings the way `args_get`/`environ_get` do: pointers
/// into `ptrs`, NUL-terminated bytes into `buf`.
fn put_strings(c: &mut Ctx, list: &[String], ptrs: i32, buf: i32) -> Result<(), i32> {
    let mut at = buf as u32;
    for (i, s) in list.iter().enumerate() {
        put_u32(c, ptrs + 4 * i as i32, at)?;
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        task::write_bytes(c, at, &bytes).map_err(|_| EFAULT)?;
        at += bytes.len() as u32;
    }
    Ok(())
}

fn sizes(c: &mut Ctx, list: fn(&Wasi) -> &Vec<String>, count: i32, size: i32) -> Result<(), i32> {
    let w = wasi(c).ok_or(ENOSYS)?;
    let l = list(w);
    let (n, bytes) = (l.len() as u32, l.iter().map(|s| s.len() as u32 + 1).sum::<u32>());
    put_u32(c, count, n)?;
    put_u32(c, size, bytes)
}

/// Reads the iovec array `(buf, len)*n`.
fn iovecs(c: &Ctx, iovs: i32, n: i32) -> Result<Vec<(u32, u32)>, i32> {
    let raw = get(c, iovs, n.checked_mul(8).ok_or(EINVAL)?)?;
    Ok(raw
        .chunks_exact(8)
        .map(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]), u32::from_le_bytes([b[4], b[5], b[6], b[7]])))
        .collect())
}

/// Most iovecs one read or write looks at (POSIX's `IOV_MAX`); the rest
/// make it a short read or write.
const IOV_MAX: i32 = 1024;

/// The bytes of a write's iovecs, at most `max` of them.
fn gather(c: &Ctx, iovs: i32, n: i32, max: usize) -> Result<Vec<u8>, i32> {
    let mut bytes = Vec::new();
    for (buf, len) in iovecs(c, iovs, n.min(IOV_MAX))? {
        let take = (len as usize).min(max - bytes.len());
        bytes.extend(get(c, buf as i32, take as i32)?);
        if bytes.len() == max {
            break;
        }
    }
    Ok(bytes)
}

/// A read's iovecs, cut to the first `max` bytes.
fn scatter(c: &Ctx, iovs: i32, n: i32, max: usize) -> Result<Vec<(u32, u32)>, i32> {
    let mut left = max as u32;
    let mut out = Vec::new();
    for (buf, len) in iovecs(c, iovs, n.min(IOV_MAX))? {
        task::check_range(c, buf, len).map_err(|_| EFAULT)?;
        if left == 0 {
            break;
        }
        out.push((buf, len.min(left)));
        left -= len.min(left);
    }
    Ok(out)
}

fn fd_write(c: Ctx, fd: i32, iovs: i32, n: i32, written: i32) -> Result<i32, Error> {
    write_at(c, fd, iovs, n, None, written)
}

fn fd_pwrite(c: Ctx, fd: i32, iovs: i32, n: i32, offset: i64, written: i32) -> Result<i32, Error> {
    write_at(c, fd, iovs, n, Some(offset as u64), written)
}

fn write_at(mut c: Ctx, fd: i32, iovs: i32, n: i32, at: Option<u64>, written: i32) -> Result<i32, Error> {
    let r = (|| {
        let stream = match fd_of(&mut c, fd)? {
            Fd::Stdout if at.is_none() => Stream::Stdout,
            Fd::Stderr if at.is_none() => Stream::Stderr,
            // A console has no offsets.
            Fd::Stdout | Fd::Stderr => return Err(ESPIPE),
            Fd::Disk(_) => return Ok(Some(gather(&c, iovs, n, wasmos_ipc::fs::MAX_WRITE)?)),
            Fd::Root => return Err(EISDIR),
            _ => return Err(EBADF),
        };
        let mut text = Vec::new();
        for (buf, len) in iovecs(&c, iovs, n)? {
            text.extend(get(&c, buf as i32, len as i32)?);
        }
        let data = c.data();
        data.system.platform.output(data.core, &data.name, stream, &text);
        put_u32(&mut c, written, text.len() as u32).map(|()| None)
    })();
    match r {
        Ok(Some(bytes)) => disk::write(&mut c, fd, bytes, at, written),
        r => errno(r.map(drop)),
    }
}

fn fd_read(c: Ctx, fd: i32, iovs: i32, n: i32, read: i32) -> Result<i32, Error> {
    read_at(c, fd, iovs, n, None, read)
}

fn fd_pread(c: Ctx, fd: i32, iovs: i32, n: i32, offset: i64, read: i32) -> Result<i32, Error> {
    read_at(c, fd, iovs, n, Some(offset as u64), read)
}

fn read_at(mut c: Ctx, fd: i32, iovs: i32, n: i32, at: Option<u64>, read: i32) -> Result<i32, Error> {
    if let Ok(Fd::Stdin) = fd_of(&mut c, fd) {
        // A console has no offsets.
        return if at.is_some() { Ok(ESPIPE) } else { console::read(&mut c, iovs, n, read) };
    }
    let r = (|| {
        if let Fd::Disk(_) = fd_of(&mut c, fd)? {
            return Ok(Some(scatter(&c, iovs, n, wasmos_ipc::fs::MAX_READ)?));
        }
        let vecs = iovecs(&c, iovs, n)?;
        let sys = c.data().system.clone();
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let (entry, pos) = match w.fds.get_mut(fd as usize).and_then(Option::as_mut) {
            Some(Fd::File { entry, pos, .. }) => (entry.clone(), pos),
            Some(Fd::Root) => return Err(EISDIR),
            _ => return Err(EBADF),
        };
        let data = sys.platform.boot_file(&entry).ok_or(ENOENT)?;
        let start = match at {
            Some(offset) => offset.min(data.len() as u64) as usize,
            None => (*pos).min(data.len() as u64) as usize,
        };
        let mut at_byte = start;
        let mut writes = Vec::new();
        for (buf, len) in vecs {
            let take = (len as usize).min(data.len() - at_byte);
            writes.push((buf, &data[at_byte..at_byte + take]));
            at_byte += take;
        }
        if at.is_none() {
            *pos = at_byte as u64;
        }
        for (buf, bytes) in writes {
            task::write_bytes(&mut c, buf, bytes).map_err(|_| EFAULT)?;
        }
        put_u32(&mut c, read, (at_byte - start) as u32).map(|()| None)
    })();
    match r {
        Ok(Some(iovs)) => disk::read(&mut c, fd, iovs, at, read),
        r => errno(r.map(drop)),
    }
}

fn fd_seek(mut c: Ctx, fd: i32, offset: i64, whence: i32, new_offset: i32) -> Result<i32, Error> {
    if let Ok(Fd::Disk(_)) = fd_of(&mut c, fd) {
        return disk::seek(&mut c, fd, offset, whence, new_offset);
    }
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let Some(Fd::File { size, pos, .. }) = w.fds.get_mut(fd as usize).and_then(Option::as_mut) else {
            return Err(EBADF);
        };
        let base = match whence {
            0 => 0i64,
            1 => *pos as i64,
            2 => *size as i64,
            _ => return Err(EINVAL),
        };
        let to = base.checked_add(offset).filter(|t| *t >= 0).ok_or(EINVAL)?;
        *pos = to as u64;
        put_u64(&mut c, new_offset, to as u64)
    })();
    errno(r)
}

fn fd_tell(c: Ctx, fd: i32, offset: i32) -> Result<i32, Error> {
    fd_seek(c, fd, 0, 1, offset)
}

fn fd_close(mut c: Ctx, fd: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        match w.fds.get_mut(fd as usize) {
            Some(slot @ Some(_)) => Ok(slot.take()),
            _ => Err(EBADF),
        }
    })();
    match r {
        // The descriptor is gone at once; the server's handle with the reply.
        Ok(Some(Fd::Disk(d))) => disk::close(&mut c, d),
        Ok(Some(Fd::Stdin)) => {
            console::release(&c);
            Ok(SUCCESS)
        }
        r => errno(r.map(drop)),
    }
}

/// Moves `from` to `to`, closing what `to` was (both must be open).
fn fd_renumber(mut c: Ctx, from: i32, to: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let open = |fd: i32| w.fds.get(fd as usize).is_some_and(Option::is_some);
        if !open(from) || !open(to) {
            return Err(EBADF);
        }
        if from == to {
            return Ok(None);
        }
        let moved = w.fds[from as usize].take();
        Ok(core::mem::replace(&mut w.fds[to as usize], moved))
    })();
    match r {
        Ok(Some(Fd::Disk(d))) => disk::close(&mut c, d),
        r => errno(r.map(drop)),
    }
}

/// The preopen `fd` names, if it is one.
fn preopen_name(c: &mut Ctx, fd: i32) -> Option<&'static str> {
    match (fd, wasi(c)?.fds.get(fd as usize)) {
        (ROOT_FD, Some(Some(Fd::Root))) => Some("/"),
        (DISK_FD, Some(Some(Fd::Disk(d)))) if d.handle == wasmos_ipc::fs::ROOT => Some(DISK_NAME),
        _ => None,
    }
}

fn fd_prestat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let name = preopen_name(&mut c, fd).ok_or(EBADF)?;
        // prestat: tag 0 (directory), then the name length.
        put_u32(&mut c, out, 0)?;
        put_u32(&mut c, out + 4, name.len() as u32)
    })();
    errno(r)
}

fn fd_prestat_dir_name(mut c: Ctx, fd: i32, path: i32, len: i32) -> Result<i32, Error> {
    let r = (|| {
        let name = preopen_name(&mut c, fd).ok_or(EBADF)?;
        if len < name.len() as i32 {
            return Err(EINVAL);
        }
        task::write_bytes(&mut c, path as u32, name.as_bytes()).map_err(|_| EFAULT)
    })();
    errno(r)
}

/// Filetype codes.
const CHARACTER_DEVICE: u8 = 2;
const DIRECTORY: u8 = 3;
const REGULAR_FILE: u8 = 4;

fn filetype(fd: &Fd) -> (u8, u64) {
    match fd {
        Fd::Stdin | Fd::Stdout | Fd::Stderr => (CHARACTER_DEVICE, 0),
        Fd::Root => (DIRECTORY, 0),
        Fd::File { size, .. } => (REGULAR_FILE, *size),
        Fd::Disk(d) if d.dir => (DIRECTORY, 0),
        Fd::Disk(_) => (REGULAR_FILE, 0),
    }
}

fn fd_filestat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let fd = fd_of(&mut c, fd)?;
        if let Fd::Disk(_) = fd {
            return Ok(true);
        }
        let (kind, size) = filetype(&fd);
        // filestat: dev, ino, filetype (u8 + padding), nlink, size, atim, mtim, ctim.
        let mut stat = [0u8; 64];
        stat[16] = kind;
        stat[24..32].copy_from_slice(&1u64.to_le_bytes());
        stat[32..40].copy_from_slice(&size.to_le_bytes());
        task::write_bytes(&mut c, out as u32, &stat).map_err(|_| EFAULT).map(|()| false)
    })();
    match r {
        Ok(true) => disk::fd_filestat_get(&mut c, fd, out),
        r => errno(r.map(drop)),
    }
}

fn fd_fdstat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let fd = fd_of(&mut c, fd)?;
        let (kind, _) = filetype(&fd);
        // fdstat: filetype, flags (u16 at 2), rights base, rights
        // inheriting. Disk descriptors have the rights they were opened
        // with; the rest all rights (the checks that matter happen per call).
        let (flags, base, inheriting) = match &fd {
            Fd::Disk(d) => (if d.append { disk::FDFLAG_APPEND } else { 0 }, d.rights, d.inheriting),
            _ => (0, u64::MAX, u64::MAX),
        };
        let mut stat = [0u8; 24];
        stat[0] = kind;
        stat[2..4].copy_from_slice(&flags.to_le_bytes());
        stat[8..16].copy_from_slice(&base.to_le_bytes());
        stat[16..24].copy_from_slice(&inheriting.to_le_bytes());
        task::write_bytes(&mut c, out as u32, &stat).map_err(|_| EFAULT)
    })();
    errno(r)
}

/// Only `APPEND` can change, and only on disk files.
fn fd_fdstat_set_flags(mut c: Ctx, fd: i32, flags: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        match w.fds.get_mut(fd as usize).and_then(Option::as_mut).ok_or(EBADF)? {
            Fd::Disk(d) if !d.dir && flags as u16 & !disk::FDFLAG_APPEND == 0 => {
                if d.rights & disk::rights::FD_FDSTAT_SET_FLAGS == 0 {
                    return Err(ENOTCAPABLE);
                }
                d.append = flags as u16 & disk::FDFLAG_APPEND != 0;
                Ok(())
            }
            _ => Err(ENOTSUP),
        }
    })();
    errno(r)
}

fn fd_filestat_set_size(mut c: Ctx, fd: i32, size: i64) -> Result<i32, Error> {
    match fd_of(&mut c, fd) {
        Ok(Fd::Disk(_)) => disk::set_size(&mut c, fd, size as u64),
        Ok(Fd::File { .. }) => Ok(EBADF),
        Ok(Fd::Root) => Ok(EISDIR),
        Ok(_) => Ok(EINVAL),
        Err(e) => Ok(e),
    }
}

fn fd_sync(mut c: Ctx, fd: i32) -> Result<i32, Error> {
    match fd_of(&mut c, fd) {
        Ok(Fd::Disk(_)) => disk::sync(&mut c, fd),
        // Nothing of the bundle or the console is left to write.
        Ok(_) => Ok(SUCCESS),
        Err(e) => Ok(e),
    }
}

fn fd_datasync(c: Ctx, fd: i32) -> Result<i32, Error> {
    fd_sync(c, fd)
}

fn fd_readdir(mut c: Ctx, fd: i32, buf: i32, len: i32, cookie: i64, used: i32) -> Result<i32, Error> {
    match fd_of(&mut c, fd) {
        Ok(Fd::Disk(_)) => disk::readdir(&mut c, fd, buf, len, cookie as u64, used),
        Ok(Fd::Root) => Ok(ENOSYS),
        Ok(_) => Ok(ENOTDIR),
        Err(e) => Ok(e),
    }
}

/// What a path call on directory `fd` does when it is not on the disk:
/// the bundle is read-only, anything else is no directory.
fn not_on_disk(c: &mut Ctx, fd: i32) -> i32 {
    match fd_of(c, fd) {
        Ok(Fd::Root) => EROFS,
        Ok(_) => ENOTDIR,
        Err(e) => e,
    }
}

fn is_disk(c: &mut Ctx, fd: i32) -> bool {
    matches!(fd_of(c, fd), Ok(Fd::Disk(_)))
}

fn path_create_directory(mut c: Ctx, fd: i32, path: i32, len: i32) -> Result<i32, Error> {
    if !is_disk(&mut c, fd) {
        return Ok(not_on_disk(&mut c, fd));
    }
    match path_arg(&c, path, len) {
        Ok(p) => disk::mkdir(&mut c, fd, &p),
        Err(e) => Ok(e),
    }
}

fn path_remove_directory(c: Ctx, fd: i32, path: i32, len: i32) -> Result<i32, Error> {
    remove(c, fd, path, len, true)
}

fn path_unlink_file(c: Ctx, fd: i32, path: i32, len: i32) -> Result<i32, Error> {
    remove(c, fd, path, len, false)
}

fn remove(mut c: Ctx, fd: i32, path: i32, len: i32, dir: bool) -> Result<i32, Error> {
    if !is_disk(&mut c, fd) {
        return Ok(not_on_disk(&mut c, fd));
    }
    match path_arg(&c, path, len) {
        Ok(p) => disk::unlink(&mut c, fd, &p, dir),
        Err(e) => Ok(e),
    }
}

fn path_rename(mut c: Ctx, fd: i32, old: i32, old_len: i32, new_fd: i32, new: i32, new_len: i32) -> Result<i32, Error> {
    match (is_disk(&mut c, fd), is_disk(&mut c, new_fd)) {
        (true, true) => {}
        (false, _) => return Ok(not_on_disk(&mut c, fd)),
        // From the disk to the read-only bundle: another file system.
        (true, false) => return Ok(if fd_of(&mut c, new_fd).is_ok() { EXDEV } else { EBADF }),
    }
    match (path_arg(&c, old, old_len), path_arg(&c, new, new_len)) {
        (Ok(o), Ok(n)) => disk::rename(&mut c, fd, &o, new_fd, &n),
        (Err(e), _) | (_, Err(e)) => Ok(e),
    }
}

fn path_filestat_get(mut c: Ctx, fd: i32, _flags: i32, path: i32, len: i32, out: i32) -> Result<i32, Error> {
    let p = match path_arg(&c, path, len) {
        Ok(p) => p,
        Err(e) => return Ok(e),
    };
    if is_disk(&mut c, fd) {
        return disk::path_filestat_get(&mut c, fd, &p, out);
    }
    let r = (|| {
        if !matches!(fd_of(&mut c, fd)?, Fd::Root) {
            return Err(ENOTDIR);
        }
        let p = p.trim_start_matches('/');
        let sys = c.data().system.clone();
        let (kind, size) = match p {
            "" | "." => (DIRECTORY, 0),
            p => (REGULAR_FILE, sys.platform.boot_file(&alloc::format!("files/{p}")).ok_or(ENOENT)?.len() as u64),
        };
        let mut stat = [0u8; 64];
        stat[16] = kind;
        stat[24..32].copy_from_slice(&1u64.to_le_bytes());
        stat[32..40].copy_from_slice(&size.to_le_bytes());
        task::write_bytes(&mut c, out as u32, &stat).map_err(|_| EFAULT)
    })();
    errno(r)
}

/// FAT has no links (`path_link`, `path_symlink`: `ENOTSUP`).
#[allow(clippy::too_many_arguments)]
fn path_link(_: Ctx, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32) -> Result<i32, Error> {
    Ok(ENOTSUP)
}

fn path_symlink(_: Ctx, _: i32, _: i32, _: i32, _: i32, _: i32) -> Result<i32, Error> {
    Ok(ENOTSUP)
}

/// Nothing is a symbolic link: `EINVAL`, as `readlink` says of a file
/// that is not one.
fn path_readlink(_: Ctx, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32) -> Result<i32, Error> {
    Ok(EINVAL)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    mut c: Ctx,
    dirfd: i32,
    _dirflags: i32,
    path: i32,
    path_len: i32,
    oflags: i32,
    rights: i64,
    inheriting: i64,
    fdflags: i32,
    fd_out: i32,
) -> Result<i32, Error> {
    let p = match path_arg(&c, path, path_len) {
        Ok(p) => p,
        Err(e) => return Ok(e),
    };
    if is_disk(&mut c, dirfd) {
        return disk::path_open(&mut c, dirfd, &p, oflags, rights as u64, inheriting as u64, fdflags as u16, fd_out);
    }
    let r = (|| {
        let path = p.trim_start_matches('/');
        if !matches!(fd_of(&mut c, dirfd)?, Fd::Root) {
            return Err(ENOTDIR);
        }
        // O_CREAT | O_EXCL | O_TRUNC: the tree is read-only.
        if oflags & (1 | 4 | 8) != 0 {
            return Err(EROFS);
        }
        let fd = if path.is_empty() || path == "." {
            Fd::Root
        } else {
            if oflags & 2 != 0 {
                return Err(ENOTDIR);
            }
            let sys = c.data().system.clone();
            let entry = alloc::format!("files/{path}");
            let size = sys.platform.boot_file(&entry).ok_or(ENOENT)?.len() as u64;
            Fd::File { entry, size, pos: 0 }
        };
        let slot = free_slot(&mut c)?;
        wasi(&mut c).ok_or(ENOSYS)?.fds[slot] = Some(fd);
        put_u32(&mut c, fd_out, slot as u32)
    })();
    errno(r)
}

fn clock_time_get(mut c: Ctx, id: i32, _precision: i64, out: i32) -> Result<i32, Error> {
    if !(0..=3).contains(&id) {
        return Ok(EINVAL);
    }
    let now = c.data().system.now_ns();
    errno(put_u64(&mut c, out, now))
}

fn clock_res_get(mut c: Ctx, id: i32, out: i32) -> Result<i32, Error> {
    if !(0..=3).contains(&id) {
        return Ok(EINVAL);
    }
    errno(put_u64(&mut c, out, 1))
}

fn random_get(mut c: Ctx, buf: i32, len: i32) -> Result<i32, Error> {
    let r = (|| {
        if len < 0 {
            return Err(EINVAL);
        }
        let mut bytes = alloc::vec![0u8; len as usize];
        c.data().system.platform.fill_random(&mut bytes);
        task::write_bytes(&mut c, buf as u32, &bytes).map_err(|_| EFAULT)
    })();
    errno(r)
}

/// Gives the core to the next ready task: suspends without a wait, so the
/// scheduler puts this task at the back of the ready queue.
fn sched_yield(_: Ctx) -> Result<i32, Error> {
    Err(Error::host(Blocked))
}

fn proc_exit(_: Ctx, code: i32) -> Result<(), Error> {
    Err(Error::i32_exit(code))
}

fn args_sizes_get(mut c: Ctx, count: i32, size: i32) -> Result<i32, Error> {
    errno(sizes(&mut c, |w| &w.args, count, size))
}

fn environ_sizes_get(mut c: Ctx, count: i32, size: i32) -> Result<i32, Error> {
    errno(sizes(&mut c, |w| &w.env, count, size))
}

fn args_get(mut c: Ctx, ptrs: i32, buf: i32) -> Result<i32, Error> {
    let list = wasi(&mut c).map(|w| w.args.clone()).unwrap_or_default();
    errno(put_strings(&mut c, &list, ptrs, buf))
}

fn environ_get(mut c: Ctx, ptrs: i32, buf: i32) -> Result<i32, Error> {
    let list = wasi(&mut c).map(|w| w.env.clone()).unwrap_or_default();
    errno(put_strings(&mut c, &list, ptrs, buf))
}

/// Subscriptions are 48 bytes, events 32. Clock subscriptions, and
/// FD_READ on stdin ([`console::poll`]); the task sleeps until the
/// earliest clock is due or stdin has input. Other kinds: `ENOSYS`.
fn poll_oneoff(mut c: Ctx, subs: i32, events: i32, n: i32, nevents: i32) -> Result<i32, Error> {
    let r = (|| {
        if n <= 0 {
            return Err(EINVAL);
        }
        let raw = get(&c, subs, n.checked_mul(48).ok_or(EINVAL)?)?;
        let now = c.data().system.now_ns();
        let mut earliest: Option<(u64, u64)> = None;
        let mut stdin: Option<u64> = None;
        for s in raw.chunks_exact(48) {
            let userdata = u64::from_le_bytes(s[0..8].try_into().expect("8 bytes"));
            if s[8] == 1 {
                let fd = u32::from_le_bytes(s[16..20].try_into().expect("4 bytes"));
                match fd_of(&mut c, fd as i32)? {
                    Fd::Stdin => stdin = Some(userdata),
                    _ => return Err(ENOSYS),
                }
                continue;
            }
            if s[8] != 0 {
                return Err(ENOSYS);
            }
            let timeout = u64::from_le_bytes(s[24..32].try_into().expect("8 bytes"));
            let absolute = u16::from_le_bytes([s[40], s[41]]) & 1 != 0;
            let deadline = if absolute { timeout } else { now.saturating_add(timeout) };
            if earliest.is_none_or(|(d, _)| deadline < d) {
                earliest = Some((deadline, userdata));
            }
        }
        if let Some(stdin) = stdin {
            return Ok(Err((stdin, earliest)));
        }
        let (deadline, userdata) = earliest.expect("n > 0");
        // The event (userdata, no error, type clock) is written now; the
        // task only sees it after the sleep below.
        let mut event = [0u8; 32];
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        task::write_bytes(&mut c, events as u32, &event).map_err(|_| EFAULT)?;
        put_u32(&mut c, nevents, 1)?;
        Ok(Ok(deadline))
    })();
    match r {
        Ok(Err((stdin, clock))) => console::poll(&mut c, events as u32, nevents as u32, stdin, clock),
        Ok(Ok(deadline)) if deadline > c.data().system.now_ns() => {
            c.data_mut().wait = Some(Wait::Sleep { deadline });
            Err(Error::host(Blocked))
        }
        Ok(_) => Ok(SUCCESS),
        Err(e) => Ok(e),
    }
}

/// Defines every implemented WASI function.
pub fn define(l: &mut Linker<TaskData>) {
    let m = MODULE;
    let r = [
        l.func_wrap(m, "fd_write", fd_write).err(),
        l.func_wrap(m, "fd_read", fd_read).err(),
        l.func_wrap(m, "fd_seek", fd_seek).err(),
        l.func_wrap(m, "fd_tell", fd_tell).err(),
        l.func_wrap(m, "fd_close", fd_close).err(),
        l.func_wrap(m, "fd_prestat_get", fd_prestat_get).err(),
        l.func_wrap(m, "fd_prestat_dir_name", fd_prestat_dir_name).err(),
        l.func_wrap(m, "fd_filestat_get", fd_filestat_get).err(),
        l.func_wrap(m, "fd_fdstat_get", fd_fdstat_get).err(),
        l.func_wrap(m, "path_open", path_open).err(),
        l.func_wrap(m, "fd_pread", fd_pread).err(),
        l.func_wrap(m, "fd_pwrite", fd_pwrite).err(),
        l.func_wrap(m, "fd_renumber", fd_renumber).err(),
        l.func_wrap(m, "fd_fdstat_set_flags", fd_fdstat_set_flags).err(),
        l.func_wrap(m, "fd_filestat_set_size", fd_filestat_set_size).err(),
        l.func_wrap(m, "fd_sync", fd_sync).err(),
        l.func_wrap(m, "fd_datasync", fd_datasync).err(),
        l.func_wrap(m, "fd_readdir", fd_readdir).err(),
        l.func_wrap(m, "path_create_directory", path_create_directory).err(),
        l.func_wrap(m, "path_remove_directory", path_remove_directory).err(),
        l.func_wrap(m, "path_unlink_file", path_unlink_file).err(),
        l.func_wrap(m, "path_rename", path_rename).err(),
        l.func_wrap(m, "path_filestat_get", path_filestat_get).err(),
        l.func_wrap(m, "path_link", path_link).err(),
        l.func_wrap(m, "path_symlink", path_symlink).err(),
        l.func_wrap(m, "path_readlink", path_readlink).err(),
        l.func_wrap(m, "clock_time_get", clock_time_get).err(),
        l.func_wrap(m, "clock_res_get", clock_res_get).err(),
        l.func_wrap(m, "random_get", random_get).err(),
        l.func_wrap(m, "sched_yield", sched_yield).err(),
        l.func_wrap(m, "proc_exit", proc_exit).err(),
        l.func_wrap(m, "args_get", args_get).err(),
        l.func_wrap(m, "args_sizes_get", args_sizes_get).err(),
        l.func_wrap(m, "environ_get", environ_get).err(),
        l.func_wrap(m, "environ_sizes_get", environ_sizes_get).err(),
        l.func_wrap(m, "poll_oneoff", poll_oneoff).err(),
    ];
    assert!(r.iter().all(Option::is_none), "defining the WASI module failed");
}

/// Defines `name` as a function of type `ty` that returns ENOSYS, unless
/// it is already defined.
pub fn define_missing(l: &mut Linker<TaskData>, name: &str, ty: &FuncType) {
    // Defining an existing name fails, which is what we want: implemented
    // functions (and stubs made earlier) stay as they are.
    let results = ty.results().len();
    let _ = l.func_new(MODULE, name, ty.clone(), move |_, _, out: &mut [Val]| {
        if results == 1 {
            out[0] = Val::I32(ENOSYS);
        }
        Ok(())
    });
}
