//! WASI stdin: the platform's console input ([`crate::Platform::console_read`];
//! COM1 in the kernel, the process's stdin hosted).
//!
//! `fd_read` on fd 0 returns what input is there at once (a short read),
//! or blocks the task (`Wait::Console`) until at least one byte has come or
//! the input has ended (0 bytes: end of file). Its core serves it
//! (`CoreState::serve_console`), woken by the platform (`console_wait`).
//! `poll_oneoff` with FD_READ on fd 0 ([`poll`]) waits the same way
//! (`Wait::PollConsole`), or until its clock subscription is due.
//!
//! Who may read: console input is one stream, so exactly one task owns it:
//! the first that reads fd 0. It keeps it until it ends or closes its fd 0;
//! then the next reader takes it. While it lives, another task's `fd_read`
//! on stdin fails with `EBUSY` at once (never a share of the bytes, never
//! a wait that could outlive the owner unseen). A read moves at most
//! [`MAX_READ`] bytes, through a buffer on the stack: no allocation.

use wasmi::{AsContext, AsContextMut, Error};

use super::{Ctx, EFAULT, EINVAL, IOV_MAX, SUCCESS};
use crate::task::{self, Blocked, TaskData, Wait};

/// Most bytes one read of stdin moves.
pub const MAX_READ: usize = 1024;
/// WASI's "device or resource busy": stdin belongs to another task.
pub const EBUSY: i32 = 10;

/// `fd_read` on stdin.
pub(super) fn read(c: &mut Ctx, iovs: i32, n: i32, read: i32) -> Result<i32, Error> {
    if let Err(errno) = claim(c) {
        return Ok(errno);
    }
    let (iovs, n, read) = (iovs as u32, n as u32, read as u32);
    let wait = Wait::Console { iovs, n, read };
    match console_fill(c, wait) {
        Some(errno) => Ok(errno),
        None => block(c, wait),
    }
}

/// Blocks the calling task on console input (`wait`), its core's waiter
/// until `CoreState::serve_console` serves it.
fn block(c: &mut Ctx, wait: Wait) -> Result<i32, Error> {
    let data = c.data_mut();
    data.wait = Some(wait);
    let id = data.id;
    data.state.borrow_mut().wait_console(id);
    Err(Error::host(Blocked))
}

/// Makes the calling task stdin's owner if no live task is (`EBUSY` else).
fn claim(c: &Ctx) -> Result<(), i32> {
    let data = c.data();
    let mut owner = data.system.stdin_owner.lock();
    match *owner {
        Some(o) if o != data.id && data.system.core_of(o).is_some() => Err(EBUSY),
        _ => {
            *owner = Some(data.id);
            Ok(())
        }
    }
}

/// The task closed its fd 0: if it owned stdin, it no longer does.
pub(super) fn release(c: &Ctx) {
    let data = c.data();
    let mut owner = data.system.stdin_owner.lock();
    if *owner == Some(data.id) {
        *owner = None;
    }
}

/// Fills a console read's iovecs (`wait`) with the input there is:
/// `Some(errno)` when the call is done (bytes, end of input, or a bad
/// pointer), `None` when there is no input yet.
pub(crate) fn console_fill(ctx: &mut impl AsContextMut<Data = TaskData>, wait: Wait) -> Option<i32> {
    let Wait::Console { iovs, n, read } = wait else { return Some(EINVAL) };
    // Every pointer is checked before input is taken, so no byte is
    // consumed for a call that then fails.
    let vecs = match cut(ctx, iovs, n).and_then(|v| task::check_range(ctx, read, 4).map(|()| v).map_err(|_| EFAULT)) {
        Ok(v) => v,
        Err(errno) => return Some(errno),
    };
    let total = vecs.iter().map(|&(_, len)| len as usize).sum::<usize>();
    let mut buf = [0u8; MAX_READ];
    let got = match total {
        // A read of nothing is answered at once, input or not.
        0 => 0,
        _ => ctx.as_context().data().system.platform.console_read(&mut buf[..total])?.min(total),
    };
    let mut at = 0;
    for (ptr, len) in vecs {
        if at == got {
            break;
        }
        let take = (len as usize).min(got - at);
        if task::write_bytes(ctx, ptr, &buf[at..at + take]).is_err() {
            return Some(EFAULT);
        }
        at += take;
    }
    match task::write_bytes(ctx, read, &(got as u32).to_le_bytes()) {
        Ok(()) => Some(SUCCESS),
        Err(_) => Some(EFAULT),
    }
}

/// The iovecs `(ptr, len)` of a read, each checked to lie in the task's
/// memory and cut so that together they take at most [`MAX_READ`] bytes;
/// at most [`IOV_MAX`] of them (a fixed array: no allocation).
fn cut(ctx: &impl AsContext<Data = TaskData>, iovs: u32, n: u32) -> Result<Iovs, i32> {
    let mut out = Iovs::default();
    let mut left = MAX_READ as u32;
    for i in 0..n.min(IOV_MAX as u32) {
        if left == 0 || out.len == IOVS_MAX {
            break;
        }
        let at = iovs.checked_add(i * 8).ok_or(EFAULT)?;
        let raw = task::read_bytes(ctx, at as i32, 8).map_err(|_| EFAULT)?;
        let ptr = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let len = u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]);
        task::check_range(ctx, ptr, len).map_err(|_| EFAULT)?;
        let take = len.min(left);
        if take > 0 {
            out.push((ptr, take));
        }
        left -= take;
    }
    Ok(out)
}

/// Most non-empty iovecs one stdin read fills (more make a short read,
/// which WASI allows); programs pass one or two.
const IOVS_MAX: usize = 16;

/// A read's iovecs in a fixed array (no allocation).
#[derive(Default)]
struct Iovs {
    items: [(u32, u32); IOVS_MAX],
    len: usize,
}

impl Iovs {
    fn push(&mut self, iov: (u32, u32)) {
        if self.len < IOVS_MAX {
            self.items[self.len] = iov;
            self.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = &(u32, u32)> {
        self.items[..self.len].iter()
    }
}

impl IntoIterator for Iovs {
    type Item = (u32, u32);
    type IntoIter = core::iter::Take<core::array::IntoIter<(u32, u32), IOVS_MAX>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter().take(self.len)
    }
}

/// `poll_oneoff` with an FD_READ subscription on stdin (userdata
/// `stdin`) and the earliest clock one, if any (deadline, userdata): one
/// event now if input (or its end) is there or the clock is due, else the
/// task blocks (`Wait::PollConsole`) until one of them. Polling stdin
/// claims it like a read.
pub(super) fn poll(
    c: &mut Ctx,
    events: u32,
    nevents: u32,
    stdin: u64,
    clock: Option<(u64, u64)>,
) -> Result<i32, Error> {
    if let Err(errno) = claim(c) {
        return Ok(errno);
    }
    if task::check_range(c, events, 32).and_then(|()| task::check_range(c, nevents, 4)).is_err() {
        return Ok(EFAULT);
    }
    let wait = Wait::PollConsole { events, nevents, stdin, clock };
    let sys = c.data().system.clone();
    if sys.platform.console_ready() {
        return Ok(poll_console_event(c, wait, true));
    }
    if clock.is_some_and(|(deadline, _)| deadline <= sys.now_ns()) {
        return Ok(poll_console_event(c, wait, false));
    }
    block(c, wait)
}

/// Writes the one event of a stdin poll (`wait`): stdin readable
/// (`input`; `nbytes` 1: "at least one", or the end of input), else the
/// clock's. Returns the errno `poll_oneoff` returns.
pub(crate) fn poll_console_event(ctx: &mut impl AsContextMut<Data = TaskData>, wait: Wait, input: bool) -> i32 {
    let Wait::PollConsole { events, nevents, stdin, clock } = wait else { return EINVAL };
    // event: userdata, error (u16 at 8), type (u8 at 10: 0 clock, 1
    // fd_read), then for fd_read nbytes (u64 at 16) and flags (u16 at 24).
    let mut event = [0u8; 32];
    match (input, clock) {
        (false, Some((_, userdata))) => event[0..8].copy_from_slice(&userdata.to_le_bytes()),
        _ => {
            event[0..8].copy_from_slice(&stdin.to_le_bytes());
            event[10] = 1;
            event[16..24].copy_from_slice(&1u64.to_le_bytes());
        }
    }
    let written =
        task::write_bytes(ctx, events, &event).and_then(|()| task::write_bytes(ctx, nevents, &1u32.to_le_bytes()));
    if written.is_ok() { SUCCESS } else { EFAULT }
}
