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
//! | `environ_get`, `environ_sizes_get` | `WASMOS_CORE`, `WASMOS_CORES`, `WASMOS_VERSION` |
//! | `fd_write` on 1, 2 | the console (one record per call) |
//! | `fd_read` on 0 | end of file (there is no interactive input yet) |
//! | `fd_prestat_get`, `fd_prestat_dir_name` | fd 3 is the preopened read-only directory `/` |
//! | `path_open`, `fd_read`, `fd_seek`, `fd_tell`, `fd_close`, `fd_filestat_get`, `fd_fdstat_get` | read-only files from the boot bundle (`files/<path>`) |
//! | `clock_time_get`, `clock_res_get` | monotonic and realtime both count from boot (no RTC yet) |
//! | `random_get` | the platform's generator (see [`crate::Platform::fill_random`]) |
//! | `sched_yield` | the task goes to the back of its core's ready queue |
//! | `poll_oneoff` | clock subscriptions: sleeps until the earliest (relative or absolute) |
//! | `proc_exit` | ends the task with the code |

use alloc::string::String;
use alloc::vec::Vec;

use wasmi::{Caller, Error, FuncType, Linker, Val};

use crate::platform::Stream;
use crate::task::{self, Blocked, TaskData, Wait};

pub use crate::imports::WASI as MODULE;

// Errno values of WASI preview 1.
const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const EISDIR: i32 = 31;
const ENOENT: i32 = 44;
pub const ENOSYS: i32 = 52;
const ENOTDIR: i32 = 54;
const EROFS: i32 = 69;

/// The preopened directory's descriptor.
const ROOT_FD: i32 = 3;

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
}

/// Per-task WASI state.
pub(crate) struct Wasi {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub fds: Vec<Option<Fd>>,
}

impl Wasi {
    pub fn new(args: Vec<String>, env: Vec<String>) -> Wasi {
        Wasi { args, env, fds: alloc::vec![Some(Fd::Stdin), Some(Fd::Stdout), Some(Fd::Stderr), Some(Fd::Root)] }
    }
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

fn fd_write(mut c: Ctx, fd: i32, iovs: i32, n: i32, written: i32) -> Result<i32, Error> {
    let r = (|| {
        let stream = match wasi(&mut c).and_then(|w| w.fds.get(fd as usize).cloned().flatten()) {
            Some(Fd::Stdout) => Stream::Stdout,
            Some(Fd::Stderr) => Stream::Stderr,
            Some(_) => return Err(EBADF),
            None => return Err(EBADF),
        };
        let mut text = Vec::new();
        for (buf, len) in iovecs(&c, iovs, n)? {
            text.extend(get(&c, buf as i32, len as i32)?);
        }
        let data = c.data();
        data.system.platform.output(data.core, &data.name, stream, &text);
        put_u32(&mut c, written, text.len() as u32)
    })();
    errno(r)
}

fn fd_read(mut c: Ctx, fd: i32, iovs: i32, n: i32, read: i32) -> Result<i32, Error> {
    let r = (|| {
        let vecs = iovecs(&c, iovs, n)?;
        let sys = c.data().system.clone();
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let (entry, pos) = match w.fds.get_mut(fd as usize).and_then(Option::as_mut) {
            Some(Fd::Stdin) => return put_u32(&mut c, read, 0),
            Some(Fd::File { entry, pos, .. }) => (entry.clone(), pos),
            Some(Fd::Root) => return Err(EISDIR),
            _ => return Err(EBADF),
        };
        let data = sys.platform.boot_file(&entry).ok_or(ENOENT)?;
        let start = (*pos).min(data.len() as u64) as usize;
        let mut at = start;
        let mut writes = Vec::new();
        for (buf, len) in vecs {
            let take = (len as usize).min(data.len() - at);
            writes.push((buf, &data[at..at + take]));
            at += take;
        }
        *pos = at as u64;
        for (buf, bytes) in writes {
            task::write_bytes(&mut c, buf, bytes).map_err(|_| EFAULT)?;
        }
        put_u32(&mut c, read, (at - start) as u32)
    })();
    errno(r)
}

fn fd_seek(mut c: Ctx, fd: i32, offset: i64, whence: i32, new_offset: i32) -> Result<i32, Error> {
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
            Some(slot @ Some(_)) => {
                *slot = None;
                Ok(())
            }
            _ => Err(EBADF),
        }
    })();
    errno(r)
}

fn fd_prestat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        if fd != ROOT_FD || !matches!(w.fds.get(fd as usize), Some(Some(Fd::Root))) {
            return Err(EBADF);
        }
        // prestat: tag 0 (directory), then the name length ("/").
        put_u32(&mut c, out, 0)?;
        put_u32(&mut c, out + 4, 1)
    })();
    errno(r)
}

fn fd_prestat_dir_name(mut c: Ctx, fd: i32, path: i32, len: i32) -> Result<i32, Error> {
    if fd != ROOT_FD {
        return Ok(EBADF);
    }
    if len < 1 {
        return Ok(EINVAL);
    }
    errno(task::write_bytes(&mut c, path as u32, b"/").map_err(|_| EFAULT))
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
    }
}

fn fd_filestat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let (kind, size) = filetype(w.fds.get(fd as usize).and_then(Option::as_ref).ok_or(EBADF)?);
        // filestat: dev, ino, filetype (u8 + padding), nlink, size, atim, mtim, ctim.
        let mut stat = [0u8; 64];
        stat[16] = kind;
        stat[24..32].copy_from_slice(&1u64.to_le_bytes());
        stat[32..40].copy_from_slice(&size.to_le_bytes());
        task::write_bytes(&mut c, out as u32, &stat).map_err(|_| EFAULT)
    })();
    errno(r)
}

fn fd_fdstat_get(mut c: Ctx, fd: i32, out: i32) -> Result<i32, Error> {
    let r = (|| {
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let (kind, _) = filetype(w.fds.get(fd as usize).and_then(Option::as_ref).ok_or(EBADF)?);
        // fdstat: filetype, flags, rights base, rights inheriting (all rights
        // granted; the checks that matter happen per call).
        let mut stat = [0u8; 24];
        stat[0] = kind;
        stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        stat[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        task::write_bytes(&mut c, out as u32, &stat).map_err(|_| EFAULT)
    })();
    errno(r)
}

#[allow(clippy::too_many_arguments)]
fn path_open(
    mut c: Ctx,
    dirfd: i32,
    _dirflags: i32,
    path: i32,
    path_len: i32,
    oflags: i32,
    _rights: i64,
    _inheriting: i64,
    _fdflags: i32,
    fd_out: i32,
) -> Result<i32, Error> {
    let r = (|| {
        let path = get(&c, path, path_len)?;
        let path = core::str::from_utf8(&path).map_err(|_| EINVAL)?.trim_start_matches('/');
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        if !matches!(w.fds.get(dirfd as usize), Some(Some(Fd::Root))) {
            return Err(EBADF);
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
        let w = wasi(&mut c).ok_or(ENOSYS)?;
        let slot = match w.fds.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                w.fds.push(None);
                w.fds.len() - 1
            }
        };
        w.fds[slot] = Some(fd);
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

/// Subscriptions are 48 bytes, events 32. Only clock subscriptions are
/// supported; the task sleeps until the earliest one is due.
fn poll_oneoff(mut c: Ctx, subs: i32, events: i32, n: i32, nevents: i32) -> Result<i32, Error> {
    let r = (|| {
        if n <= 0 {
            return Err(EINVAL);
        }
        let raw = get(&c, subs, n.checked_mul(48).ok_or(EINVAL)?)?;
        let now = c.data().system.now_ns();
        let mut earliest: Option<(u64, u64)> = None;
        for s in raw.chunks_exact(48) {
            let userdata = u64::from_le_bytes(s[0..8].try_into().expect("8 bytes"));
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
        let (deadline, userdata) = earliest.expect("n > 0");
        // The event (userdata, no error, type clock) is written now; the
        // task only sees it after the sleep below.
        let mut event = [0u8; 32];
        event[0..8].copy_from_slice(&userdata.to_le_bytes());
        task::write_bytes(&mut c, events as u32, &event).map_err(|_| EFAULT)?;
        put_u32(&mut c, nevents, 1)?;
        Ok(deadline)
    })();
    match r {
        Ok(deadline) if deadline > c.data().system.now_ns() => {
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
