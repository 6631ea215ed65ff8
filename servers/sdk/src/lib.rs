//! The WasmOS SDK: what a Rust program for WasmOS is written against.
//!
//! The raw imports (module `wasmos`) live in [`sys`]; everything else wraps
//! them: status codes become `Result<_, Status>`, pointers and lengths
//! become slices. The ABI itself (every function and error code) is
//! defined once, in `ipc/src/abi.rs`, and re-exported here as [`abi`].
//!
//! A program is a `cdylib` exporting `_start`:
//!
//! ```ignore
//! #![no_std]
//! #[unsafe(no_mangle)]
//! pub extern "C" fn _start() {
//!     wasmos_sdk::println!("hello from core {}", wasmos_sdk::core_id());
//! }
//! ```
//!
//! The SDK provides the panic handler (feature `panic-handler`, on by
//! default): a panic prints its message and ends the task with exit code -1.

#![no_std]

pub use wasmos_ipc::abi;
pub use wasmos_ipc::abi::{Kind, RecvInfo, Status};
/// The block protocol (for the file server and its tests).
pub use wasmos_ipc::block;

use core::fmt::{self, Write};

pub mod env;
pub mod fs;
pub mod net;
pub mod sysinfo;
pub mod wire;

/// The raw system calls. Prefer the wrappers below.
pub mod sys {
    #[link(wasm_import_module = "wasmos")]
    unsafe extern "C" {
        pub fn console_write(ptr: *const u8, len: i32) -> i32;
        pub fn task_spawn(
            wasm: *const u8,
            wasm_len: i32,
            name: *const u8,
            name_len: i32,
            core: i32,
            caps: *const i32,
            ncaps: i32,
        ) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn task_spawn_ns(
            wasm: *const u8,
            wasm_len: i32,
            name: *const u8,
            name_len: i32,
            core: i32,
            caps: *const i32,
            ncaps: i32,
            names: *const u8,
            names_len: i32,
        ) -> i32;
        #[allow(clippy::too_many_arguments)]
        pub fn task_spawn_env(
            wasm: *const u8,
            wasm_len: i32,
            name: *const u8,
            name_len: i32,
            core: i32,
            caps: *const i32,
            ncaps: i32,
            names: *const u8,
            names_len: i32,
            env: *const u8,
            env_len: i32,
        ) -> i32;
        pub fn task_exit(code: i32) -> !;
        pub fn task_kill(handle: i32) -> i32;
        pub fn cap_mint(handle: i32, badge: i32, rights: i32) -> i32;
        pub fn core_id() -> i32;
        pub fn core_count() -> i32;
        pub fn time_now_ns() -> i64;
        pub fn sleep_ns(ns: i64) -> i32;
        pub fn boot_file(name: *const u8, name_len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn ipc_send(handle: i32, msg: *const u8, len: i32) -> i32;
        pub fn ipc_send_cap(handle: i32, msg: *const u8, len: i32, cap: i32) -> i32;
        pub fn ipc_recv(from: i32, buf: *mut u8, cap: i32, info: *mut u8, timeout_ns: i64) -> i32;
        pub fn ipc_call(handle: i32, msg: *const u8, len: i32, buf: *mut u8, cap: i32) -> i32;
        pub fn ipc_call_timeout(handle: i32, msg: *const u8, len: i32, buf: *mut u8, cap: i32, timeout_ns: i64) -> i32;
        pub fn ipc_reply(token: i32, msg: *const u8, len: i32) -> i32;
        pub fn ipc_grant(handle: i32, granted: i32) -> i32;
        pub fn notify(handle: i32, bits: i64) -> i32;
        pub fn service_register(name: *const u8, len: i32, handle: i32) -> i32;
        pub fn service_lookup(name: *const u8, len: i32) -> i32;
        pub fn handle_close(handle: i32) -> i32;
    }
}

/// A capability handle in this task's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle(pub i32);

/// Turns a raw return value into `Ok(value)` or the error it names.
pub fn check(raw: i32) -> Result<i32, Status> {
    if raw >= 0 { Ok(raw) } else { Err(Status::from_code(raw).unwrap_or(Status::InvalidArgument)) }
}

/// Writes `text` to the console as one record.
pub fn print(text: &str) {
    // SAFETY: the pointer and length describe `text`, valid for the call.
    unsafe { sys::console_write(text.as_ptr(), text.len() as i32) };
}

/// Formats into a fixed buffer so a line reaches the console in one piece
/// (the kernel prefixes every record with the core and task name).
pub struct LineBuffer {
    buf: [u8; 512],
    len: usize,
}

impl LineBuffer {
    pub const fn new() -> Self {
        LineBuffer { buf: [0; 512], len: 0 }
    }

    /// What has been written so far.
    pub fn as_str(&self) -> &str {
        // SAFETY: only whole UTF-8 strings are ever copied in.
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }

    pub fn flush(&mut self) {
        // SAFETY: only whole UTF-8 strings are ever copied in (`write_str`
        // truncates at a char boundary).
        print(unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) });
        self.len = 0;
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.buf[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

/// `println!` for WasmOS programs (at most 512 bytes per line).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut line = $crate::LineBuffer::new();
        let _ = core::write!(line, $($arg)*);
        let _ = line.write_str("\n");
        line.flush();
    }};
}

pub fn core_id() -> u32 {
    // SAFETY: no arguments, no memory access.
    unsafe { sys::core_id() as u32 }
}

pub fn core_count() -> u32 {
    // SAFETY: no arguments, no memory access.
    unsafe { sys::core_count() as u32 }
}

/// Nanoseconds since boot.
pub fn now_ns() -> u64 {
    // SAFETY: no arguments, no memory access.
    unsafe { sys::time_now_ns() as u64 }
}

pub fn sleep_ns(ns: u64) {
    // SAFETY: no memory access.
    unsafe { sys::sleep_ns(ns as i64) };
}

/// Ends this task with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: does not return; nothing to clean up in a Wasm task.
    unsafe { sys::task_exit(code) }
}

/// Most capabilities a spawn passes on (more is `QUOTA_EXCEEDED`, never a
/// silent cut).
pub const MAX_SPAWN_CAPS: usize = 16;

/// Starts a task from a Wasm binary on `core` (`None` = the kernel picks),
/// passing it copies of `caps` (they appear as its handles 1, 2, ...).
pub fn spawn(wasm: &[u8], name: &str, core: Option<u32>, caps: &[Handle]) -> Result<Handle, Status> {
    spawn_raw(wasm, name.as_bytes(), core, caps, None, None)
}

/// Like [`spawn`], with arguments (a WASI program sees `argv`; the first
/// element names the task). At most 1024 bytes of arguments.
pub fn spawn_args(wasm: &[u8], argv: &[&str], core: Option<u32>, caps: &[Handle]) -> Result<Handle, Status> {
    let mut blob = [0u8; 1024];
    let len = join_args(argv, &mut blob)?;
    spawn_raw(wasm, &blob[..len], core, caps, None, None)
}

/// Like [`spawn_args`], giving the child the system services listed in
/// `names` (comma-separated, for example `"tcp,sysinfo"`): its namespace,
/// which must be part of this task's own (`NO_CAPABILITY` otherwise).
/// A child started any other way can look up no system service.
pub fn spawn_args_in(
    wasm: &[u8],
    argv: &[&str],
    core: Option<u32>,
    caps: &[Handle],
    names: &str,
) -> Result<Handle, Status> {
    let mut blob = [0u8; 1024];
    let len = join_args(argv, &mut blob)?;
    spawn_raw(wasm, &blob[..len], core, caps, Some(names), None)
}

/// Like [`spawn_args_in`], giving a WASI child the environment variables
/// in `env`: `K=V` entries, each ended by a NUL (at most 4096 bytes).
pub fn spawn_args_env(
    wasm: &[u8],
    argv: &[&str],
    core: Option<u32>,
    caps: &[Handle],
    names: &str,
    env: &[u8],
) -> Result<Handle, Status> {
    let mut blob = [0u8; 1024];
    let len = join_args(argv, &mut blob)?;
    spawn_raw(wasm, &blob[..len], core, caps, Some(names), Some(env))
}

/// `argv` joined by NULs into `blob`; its length, or `TOO_LARGE`.
fn join_args(argv: &[&str], blob: &mut [u8]) -> Result<usize, Status> {
    let mut len = 0;
    for (i, arg) in argv.iter().enumerate() {
        let sep = usize::from(i > 0);
        if len + sep + arg.len() > blob.len() {
            return Err(Status::TooLarge);
        }
        len += sep;
        blob[len..len + arg.len()].copy_from_slice(arg.as_bytes());
        len += arg.len();
    }
    Ok(len)
}

/// The spawn calls: `task_spawn`, `task_spawn_ns` when `names` is given,
/// `task_spawn_env` when `env` is.
fn spawn_raw(
    wasm: &[u8],
    argv: &[u8],
    core: Option<u32>,
    caps: &[Handle],
    names: Option<&str>,
    env: Option<&[u8]>,
) -> Result<Handle, Status> {
    let core = core.map_or(-1, |c| c as i32);
    if caps.len() > MAX_SPAWN_CAPS {
        return Err(Status::QuotaExceeded);
    }
    let mut ids = [0i32; MAX_SPAWN_CAPS];
    for (slot, cap) in ids.iter_mut().zip(caps) {
        *slot = cap.0;
    }
    let (wasm_ptr, wasm_len) = (wasm.as_ptr(), wasm.len() as i32);
    let (argv_ptr, argv_len, ncaps) = (argv.as_ptr(), argv.len() as i32, caps.len() as i32);
    // SAFETY: every pointer/length pair describes a live slice (the caps
    // are copied into `ids` first, as plain i32s).
    let raw = unsafe {
        match (names, env) {
            (names, Some(env)) => {
                let names = names.unwrap_or("");
                sys::task_spawn_env(
                    wasm_ptr,
                    wasm_len,
                    argv_ptr,
                    argv_len,
                    core,
                    ids.as_ptr(),
                    ncaps,
                    names.as_ptr(),
                    names.len() as i32,
                    env.as_ptr(),
                    env.len() as i32,
                )
            }
            (None, None) => sys::task_spawn(wasm_ptr, wasm_len, argv_ptr, argv_len, core, ids.as_ptr(), ncaps),
            (Some(names), None) => sys::task_spawn_ns(
                wasm_ptr,
                wasm_len,
                argv_ptr,
                argv_len,
                core,
                ids.as_ptr(),
                ncaps,
                names.as_ptr(),
                names.len() as i32,
            ),
        }
    };
    check(raw).map(Handle)
}

/// Reads a file of the boot bundle into `buf` (init only); returns its length.
pub fn boot_file(name: &str, buf: &mut [u8]) -> Result<usize, Status> {
    // SAFETY: both pointer/length pairs describe live slices.
    let raw = unsafe { sys::boot_file(name.as_ptr(), name.len() as i32, buf.as_mut_ptr(), buf.len() as i32) };
    check(raw).map(|n| n as usize)
}

/// Sends a one-way message (never blocks: `WouldBlock` when the target's
/// queue is full).
pub fn send(to: Handle, msg: &[u8]) -> Result<(), Status> {
    // SAFETY: pointer and length describe `msg`.
    check(unsafe { sys::ipc_send(to.0, msg.as_ptr(), msg.len() as i32) }).map(drop)
}

/// Sends `msg` to `to` with a copy of `cap` (which needs GRANT); the
/// receiver finds its handle for it in `RecvInfo::reply_token`.
pub fn send_cap(to: Handle, msg: &[u8], cap: Handle) -> Result<(), Status> {
    // SAFETY: pointer and length describe `msg`.
    check(unsafe { sys::ipc_send_cap(to.0, msg.as_ptr(), msg.len() as i32, cap.0) }).map(drop)
}

/// Waits for a message (from anyone, or from `from` only), at most
/// `timeout_ns` (`None` = forever). Returns what arrived and its payload
/// length in `buf`.
pub fn recv(from: Option<Handle>, buf: &mut [u8], timeout_ns: Option<u64>) -> Result<(RecvInfo, usize), Status> {
    let mut info = [0u8; RecvInfo::SIZE];
    let from = from.map_or(abi::ANY, |h| h.0);
    let timeout = timeout_ns.map_or(abi::FOREVER, |t| t.min(i64::MAX as u64) as i64);
    // SAFETY: `buf` and `info` are live, writable and as long as passed.
    let raw = unsafe { sys::ipc_recv(from, buf.as_mut_ptr(), buf.len() as i32, info.as_mut_ptr(), timeout) };
    let len = check(raw)? as usize;
    Ok((RecvInfo::from_bytes(&info), len))
}

/// Sends a request and waits for its reply, which lands in `reply`;
/// returns the reply's length.
pub fn call(to: Handle, msg: &[u8], reply: &mut [u8]) -> Result<usize, Status> {
    // SAFETY: both pointer/length pairs describe live slices.
    let raw = unsafe { sys::ipc_call(to.0, msg.as_ptr(), msg.len() as i32, reply.as_mut_ptr(), reply.len() as i32) };
    check(raw).map(|n| n as usize)
}

/// [`call`], giving up with `TimedOut` after `timeout_ns` (a reply that
/// comes later is discarded).
pub fn call_timeout(to: Handle, msg: &[u8], reply: &mut [u8], timeout_ns: u64) -> Result<usize, Status> {
    let timeout = i64::try_from(timeout_ns).unwrap_or(i64::MAX);
    // SAFETY: both pointer/length pairs describe live slices.
    let raw = unsafe {
        sys::ipc_call_timeout(to.0, msg.as_ptr(), msg.len() as i32, reply.as_mut_ptr(), reply.len() as i32, timeout)
    };
    check(raw).map(|n| n as usize)
}

/// Answers the call `info.reply_token` came from.
pub fn reply(token: u32, msg: &[u8]) -> Result<(), Status> {
    // SAFETY: pointer and length describe `msg`.
    check(unsafe { sys::ipc_reply(token as i32, msg.as_ptr(), msg.len() as i32) }).map(drop)
}

/// ORs `bits` into the target's pending notifications.
pub fn notify(to: Handle, bits: u64) -> Result<(), Status> {
    // SAFETY: no memory access.
    check(unsafe { sys::notify(to.0, bits as i64) }).map(drop)
}

/// Passes a copy of `cap` (which must carry the grant right) to `to`.
pub fn grant(to: Handle, cap: Handle) -> Result<(), Status> {
    // SAFETY: no memory access.
    check(unsafe { sys::ipc_grant(to.0, cap.0) }).map(drop)
}

/// Registers `target` (or this task, for `None`) under `name`.
pub fn register(name: &str, target: Option<Handle>) -> Result<(), Status> {
    // SAFETY: pointer and length describe `name`.
    check(unsafe { sys::service_register(name.as_ptr(), name.len() as i32, target.map_or(0, |h| h.0)) }).map(drop)
}

/// A send capability for the service registered under `name`.
pub fn lookup(name: &str) -> Result<Handle, Status> {
    // SAFETY: pointer and length describe `name`.
    check(unsafe { sys::service_lookup(name.as_ptr(), name.len() as i32) }).map(Handle)
}

/// [`lookup`], retrying every millisecond until the service appears.
pub fn lookup_wait(name: &str) -> Handle {
    loop {
        match lookup(name) {
            Ok(h) => return h,
            Err(_) => sleep_ns(1_000_000),
        }
    }
}

/// Ends the task behind `h` (needs the KILL right, which the handle a
/// spawn returns has); its parent hears of it as an exit with reason
/// `Killed`.
pub fn kill(h: Handle) -> Result<(), Status> {
    // SAFETY: no memory access.
    check(unsafe { sys::task_kill(h.0) }).map(drop)
}

/// A new handle to `h`'s target (`None`: this task) carrying `badge`, with
/// `h`'s rights masked by `rights` (bits of `wasmos_ipc::caps::Rights`).
/// Needs GRANT on `h`, and `h` must be unbadged.
pub fn mint(h: Option<Handle>, badge: u32, rights: u8) -> Result<Handle, Status> {
    // SAFETY: no memory access.
    check(unsafe { sys::cap_mint(h.map_or(0, |h| h.0), badge as i32, rights as i32) }).map(Handle)
}

/// Drops a capability.
pub fn close(h: Handle) -> Result<(), Status> {
    // SAFETY: no memory access.
    check(unsafe { sys::handle_close(h.0) }).map(drop)
}

// A program built with std (the file server: fatfs needs `std::io`) has
// std's panic handler and turns this one off (`default-features = false`).
#[cfg(all(target_arch = "wasm32", feature = "panic-handler"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("panic: {}", info.message());
    exit(-1)
}
