//! The writable preopen `/disk` (fd 4): WASI file calls on it become calls
//! of the file protocol ([`wasmos_ipc::fs`]) to the file server `fs`, made
//! by the WASI layer on the task's behalf. It exists when `fs` is
//! registered and the task's namespace holds it, when the task starts.
//!
//! How one call travels: the WASI function checks the descriptor and its
//! rights here, builds the request and calls `fs` as the task
//! ([`crate::host::start_call`]): the server may answer at once, by a
//! hand-off on this core or within a short spin, and the function returns.
//! If not, the task suspends in [`Wait::File`], with what the reply means
//! (a [`Pending`]) kept in its WASI state; the reply reaches the scheduler
//! (`CoreState::file_reply`), which gives it to [`file_reply`]: that writes
//! the results into the task's memory and ends the task's call with its
//! errno, or makes the next call of a call that needs several (`fd_readdir`
//! filling a buffer larger than one reply, an append: a seek to the end,
//! then the write).
//!
//! The server keeps one handle per open descriptor (and the position of
//! files); the WASI layer keeps, per descriptor, the handle, the kind, the
//! WASI rights and the append flag. Reads and writes move at most one
//! reply's worth ([`fs::MAX_READ`], [`fs::MAX_WRITE`]) per call: short
//! reads and writes, which WASI allows and `std` loops over.

use alloc::vec::Vec;

use wasmi::{AsContextMut, Error};
use wasmos_ipc::abi::Status;
use wasmos_ipc::caps::{Cap, SlotBudget};
use wasmos_ipc::fs::{self, Op, Request};
use wasmos_ipc::message::Payload;

use super::{Ctx, EBADF, EINVAL, EIO, EISDIR, ENOMEM, ENOTCAPABLE, ENOTDIR, ENOTSUP, Fd, SUCCESS, Wasi};
use crate::task::{self, Blocked, TaskData, Wait};

/// WASI rights (`rights` of `wasi_snapshot_preview1`).
pub mod rights {
    pub const FD_DATASYNC: u64 = 1 << 0;
    pub const FD_READ: u64 = 1 << 1;
    pub const FD_SEEK: u64 = 1 << 2;
    pub const FD_FDSTAT_SET_FLAGS: u64 = 1 << 3;
    pub const FD_SYNC: u64 = 1 << 4;
    pub const FD_TELL: u64 = 1 << 5;
    pub const FD_WRITE: u64 = 1 << 6;
    pub const FD_ADVISE: u64 = 1 << 7;
    pub const FD_ALLOCATE: u64 = 1 << 8;
    pub const PATH_CREATE_DIRECTORY: u64 = 1 << 9;
    pub const PATH_CREATE_FILE: u64 = 1 << 10;
    pub const PATH_OPEN: u64 = 1 << 13;
    pub const FD_READDIR: u64 = 1 << 14;
    pub const PATH_RENAME_SOURCE: u64 = 1 << 16;
    pub const PATH_RENAME_TARGET: u64 = 1 << 17;
    pub const PATH_FILESTAT_GET: u64 = 1 << 18;
    pub const PATH_FILESTAT_SET_SIZE: u64 = 1 << 19;
    pub const FD_FILESTAT_GET: u64 = 1 << 21;
    pub const FD_FILESTAT_SET_SIZE: u64 = 1 << 22;
    pub const PATH_REMOVE_DIRECTORY: u64 = 1 << 25;
    pub const PATH_UNLINK_FILE: u64 = 1 << 26;
    pub const POLL_FD_READWRITE: u64 = 1 << 27;

    /// What a file descriptor on the disk can have.
    pub const FILE: u64 = FD_DATASYNC
        | FD_READ
        | FD_SEEK
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | FD_TELL
        | FD_WRITE
        | FD_ADVISE
        | FD_ALLOCATE
        | FD_FILESTAT_GET
        | FD_FILESTAT_SET_SIZE
        | POLL_FD_READWRITE;
    /// What a directory descriptor on the disk can have.
    pub const DIR: u64 = FD_DATASYNC
        | FD_FDSTAT_SET_FLAGS
        | FD_SYNC
        | PATH_CREATE_DIRECTORY
        | PATH_CREATE_FILE
        | PATH_OPEN
        | FD_READDIR
        | PATH_RENAME_SOURCE
        | PATH_RENAME_TARGET
        | PATH_FILESTAT_GET
        | PATH_FILESTAT_SET_SIZE
        | FD_FILESTAT_GET
        | PATH_REMOVE_DIRECTORY
        | PATH_UNLINK_FILE;
}

/// `oflags` of `path_open`.
const O_CREAT: i32 = 1;
const O_DIRECTORY: i32 = 2;
const O_EXCL: i32 = 4;
const O_TRUNC: i32 = 8;
/// `fdflags`: the only one a disk descriptor keeps.
pub const FDFLAG_APPEND: u16 = 1;

/// One open descriptor on the disk.
#[derive(Debug, Clone)]
pub(crate) struct DiskFd {
    /// The server's handle (`fs::ROOT` for the preopen).
    pub handle: u32,
    pub dir: bool,
    pub rights: u64,
    pub inheriting: u64,
    pub append: bool,
}

impl DiskFd {
    /// The preopened disk root.
    pub fn root() -> DiskFd {
        DiskFd {
            handle: fs::ROOT,
            dir: true,
            rights: rights::DIR,
            inheriting: rights::DIR | rights::FILE,
            append: false,
        }
    }

    fn needs(&self, right: u64) -> Result<(), i32> {
        if self.rights & right == right { Ok(()) } else { Err(ENOTCAPABLE) }
    }
}

/// The rest of a WASI call whose request is at the server: what its reply
/// means. Pointers are into the task's memory (checked when written).
#[derive(Debug)]
pub(crate) enum Pending {
    /// `path_open`: the new descriptor goes into the free slot `slot`.
    Open { slot: usize, fd_out: u32, rights: u64, inheriting: u64, append: bool },
    /// `fd_read`/`fd_pread`: the bytes go into `iovs`, their count to `out`.
    Read { iovs: Vec<(u32, u32)>, out: u32 },
    /// `fd_write`/`fd_pwrite`: the count goes to `out`.
    Written { out: u32 },
    /// An append: the seek to the end came back, now write `data`.
    Append { handle: u32, data: Vec<u8>, out: u32 },
    /// `fd_seek`/`fd_tell`: the new position goes to `out`.
    Position { out: u32 },
    /// `fd_filestat_get`/`path_filestat_get`: a `filestat` at `out`.
    Stat { out: u32 },
    /// `fd_readdir`: `used` bytes of `len` at `buf` are filled; the next
    /// server cookie is `cookie`; the total goes to `out`.
    Readdir { handle: u32, buf: u32, len: u32, used: u32, out: u32 },
    /// Only the result matters.
    Status,
}

impl Pending {
    /// Kernel memory it holds (charged to the task while it waits).
    fn bytes(&self) -> usize {
        core::mem::size_of::<Pending>()
            + match self {
                Pending::Read { iovs, .. } => iovs.capacity() * 8,
                Pending::Append { data, .. } => data.capacity(),
                _ => 0,
            }
    }
}

/// What follows a reply: the task's call ends with an errno, or the next
/// request of the same call goes to the server.
pub(crate) enum Next {
    Done(i32),
    Call(Cap, Payload),
}

/// The errno of a failed call to the server.
fn status_errno(status: Status) -> i32 {
    match status {
        Status::NoMemory | Status::QuotaExceeded => ENOMEM,
        _ => EIO,
    }
}

/// The file server's capability, if it runs and the task may use it.
fn server(data: &TaskData) -> Result<Cap, i32> {
    if !data.namespace.allows(fs::SERVICE) {
        return Err(ENOTCAPABLE);
    }
    data.system.services.lock().get(fs::SERVICE).map(|s| s.cap).ok_or(EIO)
}

/// A request's bytes.
fn request(op: Op, handle: u32, a: u64, b: u32, data: &[u8]) -> Result<Payload, i32> {
    let mut buf = [0u8; wasmos_ipc::abi::MAX_PAYLOAD];
    if fs::HEADER + data.len() > buf.len() {
        return Err(super::ENAMETOOLONG);
    }
    let n = Request { op, handle, a, b, data }.encode(&mut buf);
    Payload::copy_from(&buf[..n]).map_err(status_errno)
}

/// Makes the file call `payload` for the calling task and finishes it with
/// `then` (see the module doc): returns the errno, or suspends the task.
fn call(c: &mut Ctx, mut payload: Payload, mut then: Pending) -> Result<i32, Error> {
    loop {
        crate::host::charge(c);
        let fs = match server(c.data()) {
            Ok(fs) => fs,
            Err(e) => return Ok(e),
        };
        match crate::host::start_call(c, fs, payload, None) {
            Err(status) => return Ok(status_errno(status)),
            Ok((_, Some(answer))) => match finish(c, then, answer) {
                Next::Done(errno) => return Ok(errno),
                Next::Call(_, next) => {
                    payload = next;
                    then = take_next(c);
                }
            },
            Ok((call, None)) => {
                let data = c.data_mut();
                let bytes = then.bytes();
                if !data.limits.try_charge(bytes) {
                    // The request is at the server; its reply will find no
                    // one waiting for it and be dropped.
                    return Ok(ENOMEM);
                }
                let w = data.wasi.as_mut().expect("a WASI task");
                w.pending = Some(then);
                w.held = bytes;
                data.wait = Some(Wait::File { call });
                return Err(Error::host(Blocked));
            }
        }
    }
}

/// The pending part `finish` left for the next request of a call.
fn take_next(ctx: &mut impl AsContextMut<Data = TaskData>) -> Pending {
    let mut ctx = ctx.as_context_mut();
    ctx.data_mut().wasi.as_mut().and_then(|w| w.pending.take()).unwrap_or(Pending::Status)
}

/// The reply to the file call a suspended task waits for (`Wait::File`).
pub(crate) fn file_reply(store: &mut wasmi::Store<TaskData>, reply: Result<Payload, Status>) -> Next {
    let data = store.data_mut();
    let Some(w) = data.wasi.as_mut() else { return Next::Done(EIO) };
    let held = core::mem::take(&mut w.held);
    let pending = w.pending.take();
    data.limits.refund(held);
    let Some(pending) = pending else { return Next::Done(EIO) };
    match finish(store, pending, reply) {
        Next::Call(fs, payload) => {
            // The next request of the same call: what its reply means stays
            // pending (and charged) until it comes.
            let data = store.data_mut();
            let next = data.wasi.as_mut().and_then(|w| w.pending.take()).unwrap_or(Pending::Status);
            let bytes = next.bytes();
            if !data.limits.try_charge(bytes) {
                return Next::Done(ENOMEM);
            }
            let w = data.wasi.as_mut().expect("checked");
            w.pending = Some(next);
            w.held = bytes;
            Next::Call(fs, payload)
        }
        done => done,
    }
}

/// Reads a reply: `Ok((result, data))`, or the errno it carries.
fn decode(reply: &Result<Payload, Status>) -> Result<(u32, &[u8]), i32> {
    let payload = reply.as_ref().map_err(|s| status_errno(*s))?;
    let (result, data) = fs::decode_reply(payload.as_slice()).map_err(|_| EIO)?;
    let result = result.map_err(|e| e.errno() as i32)?;
    Ok((result, data))
}

/// The WASI `filestat` of a server `Stat`.
fn filestat(stat: &fs::Stat) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[16] = match stat.kind {
        fs::Kind::File => super::REGULAR_FILE,
        fs::Kind::Dir => super::DIRECTORY,
    };
    out[24..32].copy_from_slice(&1u64.to_le_bytes());
    out[32..40].copy_from_slice(&stat.size.to_le_bytes());
    for at in [40, 48, 56] {
        out[at..at + 8].copy_from_slice(&stat.modified_ns.to_le_bytes());
    }
    out
}

fn put(ctx: &mut impl AsContextMut<Data = TaskData>, ptr: u32, bytes: &[u8]) -> Result<(), i32> {
    task::write_bytes(ctx, ptr, bytes).map_err(|_| super::EFAULT)
}

/// Finishes a call with its reply (the continuation of the WASI function
/// that made it). A next request leaves its `Pending` in the WASI state.
fn finish(ctx: &mut impl AsContextMut<Data = TaskData>, pending: Pending, reply: Result<Payload, Status>) -> Next {
    let r = (|| -> Result<Option<Payload>, i32> {
        let (result, data) = decode(&reply)?;
        match pending {
            Pending::Status => {}
            Pending::Open { slot, fd_out, rights, inheriting, append } => {
                let stat = fs::Stat::decode(data).ok_or(EIO)?;
                let dir = stat.kind == fs::Kind::Dir;
                let kind_rights = if dir { rights::DIR } else { rights::FILE };
                let fd = DiskFd { handle: result, dir, rights: rights & kind_rights, inheriting, append };
                let mut c = ctx.as_context_mut();
                let w = c.data_mut().wasi.as_mut().ok_or(EIO)?;
                match w.fds.get_mut(slot) {
                    Some(free @ None) => *free = Some(Fd::Disk(fd)),
                    _ => return Err(EIO),
                }
                put(ctx, fd_out, &(slot as u32).to_le_bytes())?;
            }
            Pending::Read { iovs, out } => {
                let mut at = 0;
                for (buf, len) in iovs {
                    let take = (len as usize).min(data.len() - at);
                    put(ctx, buf, &data[at..at + take])?;
                    at += take;
                }
                put(ctx, out, &(at as u32).to_le_bytes())?;
            }
            Pending::Written { out } => put(ctx, out, &result.to_le_bytes())?,
            Pending::Append { handle, data, out } => {
                let next = request(Op::Write, handle, fs::AT_POSITION, 0, &data)?;
                leave(ctx, Pending::Written { out });
                return Ok(Some(next));
            }
            Pending::Position { out } => put(ctx, out, data.get(..8).ok_or(EIO)?)?,
            Pending::Stat { out } => put(ctx, out, &filestat(&fs::Stat::decode(data).ok_or(EIO)?))?,
            Pending::Readdir { handle, buf, len, mut used, out } => {
                let mut last = None;
                for entry in fs::DirEntry::decode_all(data) {
                    // `.` and `..` come first (cookies 0 and 1), so the
                    // server's cookies are shifted by 2.
                    used += dirent(ctx, buf + used, len - used, entry.next + 2, entry.kind, entry.name)?;
                    last = Some(entry.next);
                    if used == len {
                        break;
                    }
                }
                match last {
                    Some(cookie) if used < len => {
                        let next = request(Op::Readdir, handle, cookie, 0, &[])?;
                        leave(ctx, Pending::Readdir { handle, buf, len, used, out });
                        return Ok(Some(next));
                    }
                    _ => put(ctx, out, &used.to_le_bytes())?,
                }
            }
        }
        Ok(None)
    })();
    match r {
        Ok(None) => Next::Done(SUCCESS),
        Ok(Some(payload)) => match server(ctx.as_context_mut().data()) {
            Ok(fs) => Next::Call(fs, payload),
            Err(e) => Next::Done(e),
        },
        Err(errno) => Next::Done(errno),
    }
}

/// Leaves the pending part of a call's next request in its WASI state.
fn leave(ctx: &mut impl AsContextMut<Data = TaskData>, pending: Pending) {
    if let Some(w) = ctx.as_context_mut().data_mut().wasi.as_mut() {
        w.pending = Some(pending);
    }
}

/// Writes one `dirent` (24 bytes, then the name) at `at`, cut off at
/// `room` bytes as WASI says; returns the bytes written.
fn dirent(
    ctx: &mut impl AsContextMut<Data = TaskData>,
    at: u32,
    room: u32,
    next: u64,
    kind: fs::Kind,
    name: &str,
) -> Result<u32, i32> {
    let mut entry = Vec::new();
    entry.try_reserve_exact(24 + name.len()).map_err(|_| ENOMEM)?;
    entry.extend_from_slice(&next.to_le_bytes());
    // d_ino: any non-zero number (FAT has no inodes; libc skips zero).
    entry.extend_from_slice(&next.to_le_bytes());
    entry.extend_from_slice(&(name.len() as u32).to_le_bytes());
    entry.push(match kind {
        fs::Kind::File => super::REGULAR_FILE,
        fs::Kind::Dir => super::DIRECTORY,
    });
    entry.extend_from_slice(&[0; 3]);
    entry.extend_from_slice(name.as_bytes());
    let n = entry.len().min(room as usize);
    put(ctx, at, &entry[..n])?;
    Ok(n as u32)
}

// ---- The WASI calls on disk descriptors (called from `super`). ----

/// The disk descriptor `fd`, or `EBADF`.
fn disk_fd(c: &mut Ctx, fd: i32) -> Result<DiskFd, i32> {
    match super::wasi(c).ok_or(EBADF)?.fds.get(fd as usize) {
        Some(Some(Fd::Disk(d))) => Ok(d.clone()),
        _ => Err(EBADF),
    }
}

fn disk_dir(c: &mut Ctx, fd: i32, right: u64) -> Result<DiskFd, i32> {
    let d = disk_fd(c, fd)?;
    if !d.dir {
        return Err(ENOTDIR);
    }
    d.needs(right)?;
    Ok(d)
}

fn disk_file(c: &mut Ctx, fd: i32) -> Result<DiskFd, i32> {
    let d = disk_fd(c, fd)?;
    if d.dir {
        return Err(EISDIR);
    }
    Ok(d)
}

/// Runs `make` (which checks and builds the request) and, if it gives a
/// request, makes the call.
fn run(c: &mut Ctx, make: impl FnOnce(&mut Ctx) -> Result<(Payload, Pending), i32>) -> Result<i32, Error> {
    match make(c) {
        Ok((payload, then)) => call(c, payload, then),
        Err(errno) => Ok(errno),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn path_open(
    c: &mut Ctx,
    dirfd: i32,
    path: &str,
    oflags: i32,
    base: u64,
    inheriting: u64,
    fdflags: u16,
    fd_out: i32,
) -> Result<i32, Error> {
    run(c, |c| {
        let dir = disk_dir(c, dirfd, rights::PATH_OPEN)?;
        if oflags & O_CREAT != 0 {
            dir.needs(rights::PATH_CREATE_FILE)?;
        }
        if oflags & O_TRUNC != 0 {
            dir.needs(rights::PATH_FILESTAT_SET_SIZE)?;
        }
        if oflags & !(O_CREAT | O_DIRECTORY | O_EXCL | O_TRUNC) != 0 {
            return Err(EINVAL);
        }
        // Rights beyond what the directory hands down are dropped, as
        // wasi-libc and wasmtime do.
        let (base, inheriting) = (base & dir.inheriting, inheriting & dir.inheriting);
        let mut flags = 0;
        let wants_write = base & (rights::FD_WRITE | rights::FD_FILESTAT_SET_SIZE) != 0 || fdflags & FDFLAG_APPEND != 0;
        for (bit, flag) in [
            (O_CREAT, fs::open::CREATE),
            (O_EXCL, fs::open::EXCLUSIVE),
            (O_TRUNC, fs::open::TRUNCATE),
            (O_DIRECTORY, fs::open::DIRECTORY),
        ] {
            if oflags & bit != 0 {
                flags |= flag;
            }
        }
        if base & (rights::FD_READ | rights::FD_READDIR) != 0 {
            flags |= fs::open::READ;
        }
        // The server creates and truncates only for writing handles.
        if wants_write || oflags & (O_CREAT | O_TRUNC) != 0 {
            flags |= fs::open::WRITE;
        }
        if flags & fs::open::EXCLUSIVE != 0 && flags & fs::open::CREATE == 0 {
            // O_EXCL without O_CREAT means nothing (POSIX leaves it open).
            flags &= !fs::open::EXCLUSIVE;
        }
        let slot = super::free_slot(c)?;
        let payload = request(Op::Open, dir.handle, flags, 0, path.as_bytes())?;
        let append = fdflags & FDFLAG_APPEND != 0;
        Ok((payload, Pending::Open { slot, fd_out: fd_out as u32, rights: base, inheriting, append }))
    })
}

pub(super) fn read(c: &mut Ctx, fd: i32, iovs: Vec<(u32, u32)>, at: Option<u64>, out: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_file(c, fd)?;
        if d.rights & rights::FD_READ == 0 {
            return Err(EBADF);
        }
        let total = iovs.iter().map(|(_, l)| *l as u64).sum::<u64>().min(fs::MAX_READ as u64);
        // Beyond what FAT can hold nothing is there.
        let offset = match at {
            Some(a) if a > fs::MAX_FILE_SIZE => fs::MAX_FILE_SIZE,
            Some(a) => a,
            None => fs::AT_POSITION,
        };
        let payload = request(Op::Read, d.handle, offset, total as u32, &[])?;
        Ok((payload, Pending::Read { iovs, out: out as u32 }))
    })
}

pub(super) fn write(c: &mut Ctx, fd: i32, bytes: Vec<u8>, at: Option<u64>, out: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_file(c, fd)?;
        if d.rights & rights::FD_WRITE == 0 {
            return Err(EBADF);
        }
        let out = out as u32;
        match at {
            Some(a) if a.saturating_add(bytes.len() as u64) > fs::MAX_FILE_SIZE => Err(super::EFBIG),
            Some(a) => Ok((request(Op::Write, d.handle, a, 0, &bytes)?, Pending::Written { out })),
            // An append moves to the end first (whoever else wrote there),
            // then writes at the position, which the write advances.
            None if d.append => {
                Ok((request(Op::Seek, d.handle, 0, 2, &[])?, Pending::Append { handle: d.handle, data: bytes, out }))
            }
            None => Ok((request(Op::Write, d.handle, fs::AT_POSITION, 0, &bytes)?, Pending::Written { out })),
        }
    })
}

pub(super) fn seek(c: &mut Ctx, fd: i32, offset: i64, whence: i32, out: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_fd(c, fd)?;
        if d.dir {
            return Err(EBADF);
        }
        let right = if offset == 0 && whence == 1 { rights::FD_TELL } else { rights::FD_SEEK };
        d.needs(right)?;
        if !(0..=2).contains(&whence) {
            return Err(EINVAL);
        }
        let payload = request(Op::Seek, d.handle, offset as u64, whence as u32, &[])?;
        Ok((payload, Pending::Position { out: out as u32 }))
    })
}

pub(super) fn close(c: &mut Ctx, fd: DiskFd) -> Result<i32, Error> {
    if fd.handle == fs::ROOT {
        return Ok(SUCCESS);
    }
    run(c, |_| Ok((request(Op::Close, fd.handle, 0, 0, &[])?, Pending::Status)))
}

pub(super) fn fd_filestat_get(c: &mut Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_fd(c, fd)?;
        d.needs(rights::FD_FILESTAT_GET)?;
        Ok((request(Op::Stat, d.handle, 0, 0, &[])?, Pending::Stat { out: out as u32 }))
    })
}

pub(super) fn path_filestat_get(c: &mut Ctx, fd: i32, path: &str, out: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_dir(c, fd, rights::PATH_FILESTAT_GET)?;
        // An empty path is the directory itself here, but not in WASI.
        if path.is_empty() {
            return Err(super::ENOENT);
        }
        Ok((request(Op::Stat, d.handle, 0, 0, path.as_bytes())?, Pending::Stat { out: out as u32 }))
    })
}

pub(super) fn set_size(c: &mut Ctx, fd: i32, size: u64) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_file(c, fd)?;
        if d.rights & rights::FD_FILESTAT_SET_SIZE == 0 {
            return Err(EBADF);
        }
        if size > fs::MAX_FILE_SIZE {
            return Err(super::EFBIG);
        }
        Ok((request(Op::Truncate, d.handle, size, 0, &[])?, Pending::Status))
    })
}

pub(super) fn sync(c: &mut Ctx, fd: i32) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_fd(c, fd)?;
        Ok((request(Op::Sync, d.handle, 0, 0, &[])?, Pending::Status))
    })
}

pub(super) fn readdir(c: &mut Ctx, fd: i32, buf: i32, len: i32, cookie: u64, out: i32) -> Result<i32, Error> {
    // `None`: the buffer is full already (`.` and `..`), no call needed.
    let first = (|| -> Result<Option<(Payload, Pending)>, i32> {
        let d = disk_dir(c, fd, rights::FD_READDIR)?;
        if buf < 0 || len < 0 {
            return Err(super::EFAULT);
        }
        task::check_range(c, buf as u32, len as u32).map_err(|_| super::EFAULT)?;
        let (buf, len, out) = (buf as u32, len as u32, out as u32);
        // `.` and `..` first (cookies 0 and 1), then the server's entries.
        let mut used = 0;
        for (at, name) in [(0, "."), (1, "..")] {
            if cookie <= at && used < len {
                used += dirent(c, buf + used, len - used, at + 1, fs::Kind::Dir, name)?;
            }
        }
        if used == len {
            put(c, out, &used.to_le_bytes())?;
            return Ok(None);
        }
        let payload = request(Op::Readdir, d.handle, cookie.saturating_sub(2), 0, &[])?;
        Ok(Some((payload, Pending::Readdir { handle: d.handle, buf, len, used, out })))
    })();
    match first {
        Ok(Some((payload, then))) => call(c, payload, then),
        Ok(None) => Ok(SUCCESS),
        Err(errno) => Ok(errno),
    }
}

pub(super) fn mkdir(c: &mut Ctx, fd: i32, path: &str) -> Result<i32, Error> {
    run(c, |c| {
        let d = disk_dir(c, fd, rights::PATH_CREATE_DIRECTORY)?;
        Ok((request(Op::Mkdir, d.handle, 0, 0, path.as_bytes())?, Pending::Status))
    })
}

pub(super) fn unlink(c: &mut Ctx, fd: i32, path: &str, dir: bool) -> Result<i32, Error> {
    run(c, |c| {
        let right = if dir { rights::PATH_REMOVE_DIRECTORY } else { rights::PATH_UNLINK_FILE };
        let d = disk_dir(c, fd, right)?;
        let b = if dir { fs::REMOVE_DIR } else { 0 };
        Ok((request(Op::Unlink, d.handle, 0, b, path.as_bytes())?, Pending::Status))
    })
}

pub(super) fn rename(c: &mut Ctx, old_fd: i32, old: &str, new_fd: i32, new: &str) -> Result<i32, Error> {
    run(c, |c| {
        let from = disk_dir(c, old_fd, rights::PATH_RENAME_SOURCE)?;
        disk_dir(c, new_fd, rights::PATH_RENAME_TARGET)?;
        if old_fd != new_fd {
            // The protocol renames within one directory handle.
            return Err(ENOTSUP);
        }
        let mut both = Vec::new();
        both.try_reserve_exact(old.len() + new.len()).map_err(|_| ENOMEM)?;
        both.extend_from_slice(old.as_bytes());
        both.extend_from_slice(new.as_bytes());
        Ok((request(Op::Rename, from.handle, 0, old.len() as u32, &both)?, Pending::Status))
    })
}

/// The close requests for the disk handles of a task that ended: sent as
/// its calls, their replies find no one and are dropped, and the server
/// forgets the handles.
pub(crate) fn orphaned_handles(w: &Wasi) -> impl Iterator<Item = Payload> + '_ {
    w.fds.iter().flatten().filter_map(|fd| match fd {
        Fd::Disk(d) if d.handle != fs::ROOT => request(Op::Close, d.handle, 0, 0, &[]).ok(),
        _ => None,
    })
}
