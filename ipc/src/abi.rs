//! The WasmOS system-call ABI, as seen from a Wasm program.
//!
//! Every function is imported from module [`MODULE`]. Pointers are offsets
//! into the caller's linear memory (i32), lengths are i32, times are i64
//! nanoseconds. Every function but `task_exit` (which does not return) and
//! `time_now_ns` (an i64 time) returns an i32: `>= 0` is success (some
//! functions return a value, such as a handle or a length), `< 0` is one
//! of the [`Status`] errors. A bad pointer never traps the kernel: the
//! range is checked against the caller's memory and `BAD_POINTER` returned.
//!
//! [`FUNCTIONS`] is the one list of the system calls: each one's name,
//! parameters, result, whether it can block, and every status it can
//! return. Everything else is checked against it: the kernel's host
//! functions (`sched/src/host.rs`; a module importing a name or a
//! signature not in the table is `INVALID_WASM` at spawn), the SDK's
//! externs (`servers/sdk`), the test programs' WAT prelude
//! (`tests/wasm/prelude.wat`) and the table in `docs/ABI.md` (tests in
//! `sched/tests/abi.rs` and `tests/src/abi_copies.rs`).
//!
//! Payloads are at most [`MAX_PAYLOAD`] bytes; larger data travels as
//! several messages (the receiver learns each part's length from
//! [`RecvInfo::len`]).
//!
//! Handles: a task names other tasks only through handles (small integers)
//! in its own capability table. Handle `0` is never valid. A spawned task
//! finds the capabilities its parent passed at handles `1..=ncaps`, in
//! order. A handle that was never issued or was closed gives
//! `INVALID_HANDLE`; one whose target died gives `DEAD_TARGET`.
//!
//! Receiving: `ipc_recv` copies the payload into `buf` (at most `cap`
//! bytes; a longer message gives `TOO_LARGE` and stays queued) and writes a
//! [`RecvInfo`] at `info` (pass 0 to skip it). Notification bits and
//! child-exit reports arrive through the same `ipc_recv`, told apart by
//! [`RecvInfo::kind`].
//!
//! Nothing is ever interrupted: a blocked call ends only with its result,
//! its timeout (`TIMED_OUT`), or the death of the peer (`DEAD_TARGET`), so
//! there is no `INTERRUPTED` status. `docs/ABI.md` is the long form of
//! this page (message path, capability rules, blocking rules).

/// Import module name.
pub const MODULE: &str = "wasmos";

/// Largest message payload, in bytes.
pub const MAX_PAYLOAD: usize = 4096;

/// `from` argument of `ipc_recv` meaning "any sender".
pub const ANY: i32 = -1;

/// `timeout_ns` argument meaning "wait forever".
pub const FOREVER: i64 = -1;

/// Messages a task may have queued before senders get `WOULD_BLOCK`.
pub const INBOX_CAPACITY: usize = 256;

/// Names one task may have registered with `service_register` at once
/// (more is `QUOTA_EXCEEDED`; they are returned when the task ends). The
/// name service as a whole holds a bounded number too (`NO_MEMORY` when
/// full), part of it kept for the kernel's own services; names are
/// 1..=1024 bytes of UTF-8 (empty is `INVALID_ARGUMENT`).
pub const MAX_NAMES_PER_TASK: usize = 16;

/// A Wasm value type in a system call's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValType {
    I32,
    I64,
}

impl ValType {
    pub fn name(self) -> &'static str {
        match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
        }
    }
}

/// One system call: what a program imports and what it can get back.
#[derive(Debug)]
pub struct Function {
    pub name: &'static str,
    /// Parameter names (as in `docs/ABI.md`) and types.
    pub params: &'static [(&'static str, ValType)],
    /// `None` only for `task_exit`, which does not return.
    pub result: Option<ValType>,
    /// Whether the call can suspend the caller (until a message, a reply,
    /// a timeout); a call that never blocks answers at once.
    pub blocks: bool,
    /// Every error status the call can return; nothing else is ever
    /// returned below 0 (checked by `sched/tests/abi.rs`).
    pub errors: &'static [Status],
}

impl Function {
    /// The Wasm signature as `docs/ABI.md` writes it: `(i32,i32)->i32`.
    pub fn signature(&self) -> Signature<'_> {
        Signature(self)
    }
}

/// A function's signature, displayed as `(i32,i64)->i32` (`->()` for none).
pub struct Signature<'a>(&'a Function);

impl core::fmt::Display for Signature<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("(")?;
        for (i, (_, t)) in self.0.params.iter().enumerate() {
            write!(f, "{}{}", if i > 0 { "," } else { "" }, t.name())?;
        }
        write!(f, ")->{}", self.0.result.map_or("()", ValType::name))
    }
}

// Not `Status::*`: its `Ok` would shadow `Result::Ok` in this module.
use Status::{
    AlreadyExists, BadPointer, DeadTarget, InvalidArgument, InvalidHandle, InvalidWasm, NoCaller, NoCapability,
    NoMemory, NotFound, QuotaExceeded, TimedOut, TooLarge, WouldBlock,
};
use ValType::{I32, I64};

/// The statuses every call that uses a handle can return.
const HANDLE: [Status; 2] = [InvalidHandle, NoCapability];

/// `task_spawn_env`'s parameters; `task_spawn_ns` takes the first nine,
/// `task_spawn` the first seven.
const SPAWN_ENV_PARAMS: [(&str, ValType); 11] = [
    ("wasm", I32),
    ("wasm_len", I32),
    ("argv", I32),
    ("argv_len", I32),
    ("core_hint", I32),
    ("caps", I32),
    ("ncaps", I32),
    ("names", I32),
    ("names_len", I32),
    ("env", I32),
    ("env_len", I32),
];

/// The statuses both spawn calls can return.
const SPAWN_ERRORS: &[Status] =
    &[BadPointer, InvalidArgument, HANDLE[0], HANDLE[1], QuotaExceeded, InvalidWasm, WouldBlock, NoMemory];

/// Every system call, in the order of `docs/ABI.md`.
pub const FUNCTIONS: &[Function] = &[
    // A queued message is charged to its sender until it is received:
    // payload + 64 bytes against the sender's budget (1 MiB by default,
    // `WOULD_BLOCK` when full) and the system's (16 MiB, the last 4 MiB
    // only for tasks the kernel started: `NO_MEMORY` when full).
    Function {
        name: "ipc_send",
        params: &[("h", I32), ("msg", I32), ("len", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[HANDLE[0], HANDLE[1], BadPointer, TooLarge, WouldBlock, DeadTarget, NoMemory],
    },
    // Charged and limited as `ipc_send`.
    Function {
        name: "ipc_send_cap",
        params: &[("h", I32), ("msg", I32), ("len", I32), ("cap_h", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[HANDLE[0], HANDLE[1], BadPointer, TooLarge, WouldBlock, DeadTarget, NoMemory],
    },
    // `timeout_ns`: -1 forever, 0 poll, > 0 at most that long; any other
    // negative value is `INVALID_ARGUMENT`.
    Function {
        name: "ipc_recv",
        params: &[("from", I32), ("buf", I32), ("cap", I32), ("info", I32), ("timeout_ns", I64)],
        result: Some(I32),
        blocks: true,
        errors: &[InvalidHandle, BadPointer, TooLarge, TimedOut, InvalidArgument, QuotaExceeded, NoMemory],
    },
    Function {
        name: "ipc_call",
        params: &[("h", I32), ("msg", I32), ("len", I32), ("buf", I32), ("cap", I32)],
        result: Some(I32),
        blocks: true,
        errors: &[HANDLE[0], HANDLE[1], BadPointer, TooLarge, DeadTarget, InvalidArgument, NoMemory],
    },
    Function {
        name: "ipc_call_timeout",
        params: &[("h", I32), ("msg", I32), ("len", I32), ("buf", I32), ("cap", I32), ("timeout_ns", I64)],
        result: Some(I32),
        blocks: true,
        errors: &[HANDLE[0], HANDLE[1], BadPointer, TooLarge, DeadTarget, InvalidArgument, TimedOut, NoMemory],
    },
    Function {
        name: "ipc_reply",
        params: &[("token", I32), ("msg", I32), ("len", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[BadPointer, TooLarge, NoCaller, DeadTarget, NoMemory],
    },
    // Charged and limited as `ipc_send` (no payload: 64 bytes).
    Function {
        name: "ipc_grant",
        params: &[("h", I32), ("cap_h", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[HANDLE[0], HANDLE[1], WouldBlock, DeadTarget, NoMemory],
    },
    Function {
        name: "notify",
        params: &[("h", I32), ("bits", I64)],
        result: Some(I32),
        blocks: false,
        errors: &[HANDLE[0], HANDLE[1], WouldBlock, DeadTarget],
    },
    // `core_hint`: -1 (any core) or a core, else `INVALID_ARGUMENT`; the
    // task's name (argv's first part) must be UTF-8 without control
    // characters, else `INVALID_ARGUMENT`.
    Function {
        name: "task_spawn",
        params: SPAWN_ENV_PARAMS.split_at(7).0,
        result: Some(I32),
        blocks: false,
        errors: SPAWN_ERRORS,
    },
    // `task_spawn` that also gives the child a namespace: `names` is a
    // comma-separated list of system names (see [`crate::names`]); one the
    // caller does not hold is `NO_CAPABILITY`, one that is not a system
    // name `INVALID_ARGUMENT`.
    Function {
        name: "task_spawn_ns",
        params: SPAWN_ENV_PARAMS.split_at(9).0,
        result: Some(I32),
        blocks: false,
        errors: SPAWN_ERRORS,
    },
    // `task_spawn_ns` that also gives a WASI child environment variables:
    // `env` holds `K=V` entries, each ended by a NUL (at most 4096 bytes;
    // an entry without `=`, with an empty key or not UTF-8 is
    // `INVALID_ARGUMENT`). The child sees them after `WASMOS_*`.
    Function {
        name: "task_spawn_env",
        params: &SPAWN_ENV_PARAMS,
        result: Some(I32),
        blocks: false,
        errors: SPAWN_ERRORS,
    },
    Function { name: "task_exit", params: &[("code", I32)], result: None, blocks: false, errors: &[] },
    Function {
        name: "task_kill",
        params: &[("h", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[InvalidHandle, NoCapability, DeadTarget, InvalidArgument],
    },
    // Names are 1..=1024 bytes (empty: `INVALID_ARGUMENT`), charged to the
    // registering task: [`MAX_NAMES_PER_TASK`] each (`QUOTA_EXCEEDED`),
    // 1024 in all, the last 64 only for tasks the kernel started
    // (`NO_MEMORY`). A system name (see [`crate::names`]) only for tasks
    // the kernel started (`NO_CAPABILITY`).
    Function {
        name: "service_register",
        params: &[("name", I32), ("name_len", I32), ("h", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[BadPointer, InvalidArgument, HANDLE[0], HANDLE[1], AlreadyExists, QuotaExceeded, NoMemory],
    },
    // A system name outside the caller's namespace is `NO_CAPABILITY`.
    Function {
        name: "service_lookup",
        params: &[("name", I32), ("name_len", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[BadPointer, InvalidArgument, NoCapability, NotFound, QuotaExceeded, NoMemory],
    },
    Function {
        name: "cap_mint",
        params: &[("h", I32), ("badge", I32), ("rights", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[InvalidHandle, NoCapability, InvalidArgument, QuotaExceeded, NoMemory],
    },
    Function {
        name: "handle_close",
        params: &[("h", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[InvalidHandle],
    },
    Function { name: "time_now_ns", params: &[], result: Some(I64), blocks: false, errors: &[] },
    Function { name: "sleep_ns", params: &[("ns", I64)], result: Some(I32), blocks: true, errors: &[] },
    Function {
        name: "console_write",
        params: &[("ptr", I32), ("len", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[BadPointer],
    },
    Function { name: "core_id", params: &[], result: Some(I32), blocks: false, errors: &[] },
    Function { name: "core_count", params: &[], result: Some(I32), blocks: false, errors: &[] },
    Function {
        name: "boot_file",
        params: &[("name", I32), ("name_len", I32), ("buf", I32), ("cap", I32)],
        result: Some(I32),
        blocks: false,
        errors: &[NoCapability, BadPointer, InvalidArgument, NotFound, TooLarge],
    },
];

/// The system call named `name`, if there is one.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Status codes. Success is any value `>= 0`.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok = 0,
    /// The handle was never issued, or was closed.
    InvalidHandle = -1,
    /// The handle exists but lacks the right for this operation; or a
    /// system name outside the caller's namespace (`service_lookup`,
    /// `task_spawn_ns`) or not the caller's to register.
    NoCapability = -2,
    /// The target's queue (or the ring to its core) is full, or the sender
    /// has its whole queued-bytes budget in flight; try again.
    WouldBlock = -3,
    /// The target task has exited or was killed.
    DeadTarget = -4,
    /// A pointer/length pair runs outside the caller's linear memory.
    BadPointer = -5,
    /// The message is longer than [`MAX_PAYLOAD`], or than the receive buffer.
    TooLarge = -6,
    /// The timeout passed before a message arrived.
    TimedOut = -7,
    /// A system-wide budget of kernel memory is used up: queued message
    /// bytes (`ipc_send`, `ipc_send_cap`, `ipc_grant`) or names
    /// (`service_register`). Nothing was done.
    NoMemory = -8,
    /// The bytes given to `task_spawn` are not a valid Wasm module, or it
    /// imports something the kernel does not provide.
    InvalidWasm = -9,
    /// A per-task limit (tasks, handles, children, names) would be exceeded.
    QuotaExceeded = -10,
    /// No service is registered under that name.
    NotFound = -11,
    /// A service with that name is already registered.
    AlreadyExists = -12,
    /// An argument is out of range (negative length, unknown core...).
    InvalidArgument = -13,
    /// The reply token does not name a call waiting for a reply.
    NoCaller = -14,
}

impl Status {
    pub const ALL: [Status; 15] = [
        Status::Ok,
        Status::InvalidHandle,
        Status::NoCapability,
        Status::WouldBlock,
        Status::DeadTarget,
        Status::BadPointer,
        Status::TooLarge,
        Status::TimedOut,
        Status::NoMemory,
        Status::InvalidWasm,
        Status::QuotaExceeded,
        Status::NotFound,
        Status::AlreadyExists,
        Status::InvalidArgument,
        Status::NoCaller,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::InvalidHandle => "INVALID_HANDLE",
            Status::NoCapability => "NO_CAPABILITY",
            Status::WouldBlock => "WOULD_BLOCK",
            Status::DeadTarget => "DEAD_TARGET",
            Status::BadPointer => "BAD_POINTER",
            Status::TooLarge => "TOO_LARGE",
            Status::TimedOut => "TIMED_OUT",
            Status::NoMemory => "NO_MEMORY",
            Status::InvalidWasm => "INVALID_WASM",
            Status::QuotaExceeded => "QUOTA_EXCEEDED",
            Status::NotFound => "NOT_FOUND",
            Status::AlreadyExists => "ALREADY_EXISTS",
            Status::InvalidArgument => "INVALID_ARGUMENT",
            Status::NoCaller => "NO_CALLER",
        }
    }
}

/// What `ipc_recv` received.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A one-way message from `ipc_send` or `ipc_send_cap`; for the
    /// latter, `info.reply_token` is the new handle of the capability that
    /// came with it (0 = none).
    Message = 1,
    /// A request from `ipc_call`; answer with `ipc_reply(info.reply_token)`.
    Call = 2,
    /// Notification bits (in `info.bits`), no payload.
    Notification = 3,
    /// A child exited: `info.badge` = the child's handle in the receiver's
    /// table, `info.bits` = exit code (low 32 bits, sign-extended) and
    /// [`ExitReason`] in bits 32..40.
    ChildExit = 4,
    /// A capability passed with `ipc_grant`: `info.reply_token` holds the
    /// new handle in the receiver's table, `info.badge` the sender's badge.
    Grant = 5,
}

/// Why a task ended, as reported to its parent.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitReason {
    /// `task_exit(code)` or `_start` returned (code 0).
    Exited = 0,
    /// Executed `unreachable`.
    Unreachable = 1,
    /// Out-of-bounds memory or table access.
    MemoryOutOfBounds = 2,
    /// Integer divide by zero or overflow.
    IntegerTrap = 3,
    /// Call stack exhausted.
    StackOverflow = 4,
    /// Could not grow memory or allocate kernel state.
    OutOfMemory = 5,
    /// Any other trap (bad indirect call, bad conversion...).
    OtherTrap = 6,
    /// Ended by `task_kill` (its parent, or whoever it gave the KILL right).
    Killed = 7,
}

impl ExitReason {
    pub fn from_u8(v: u8) -> Option<ExitReason> {
        use ExitReason::*;
        [Exited, Unreachable, MemoryOutOfBounds, IntegerTrap, StackOverflow, OutOfMemory, OtherTrap, Killed]
            .into_iter()
            .find(|r| *r as u8 == v)
    }

    pub fn name(self) -> &'static str {
        match self {
            ExitReason::Exited => "exited",
            ExitReason::Unreachable => "unreachable",
            ExitReason::MemoryOutOfBounds => "memory out of bounds",
            ExitReason::IntegerTrap => "integer trap",
            ExitReason::StackOverflow => "stack overflow",
            ExitReason::OutOfMemory => "out of memory",
            ExitReason::OtherTrap => "trap",
            ExitReason::Killed => "killed",
        }
    }
}

/// Written by `ipc_recv` at its `info` pointer: 24 bytes, little-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecvInfo {
    /// A [`Kind`] value.
    pub kind: u32,
    /// Payload length in bytes.
    pub len: u32,
    /// The badge of the capability the sender used (set by whoever granted
    /// it), identifying the sender to a server; for child exits, the handle.
    pub badge: u32,
    /// For `Call`: the token to pass to `ipc_reply`. For `Grant`, and for
    /// a `Message` sent with `ipc_send_cap`: the receiver's new handle for
    /// the capability that came with it (0 = none).
    pub reply_token: u32,
    /// Notification bits, or exit code and reason for `ChildExit`; for
    /// `Message` and `Call`, the sender's task id (never reused, so a
    /// server may key per-client state on it; the file protocol does).
    pub bits: u64,
}

impl RecvInfo {
    pub const SIZE: usize = 24;

    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.kind.to_le_bytes());
        b[4..8].copy_from_slice(&self.len.to_le_bytes());
        b[8..12].copy_from_slice(&self.badge.to_le_bytes());
        b[12..16].copy_from_slice(&self.reply_token.to_le_bytes());
        b[16..24].copy_from_slice(&self.bits.to_le_bytes());
        b
    }

    pub fn from_bytes(b: &[u8; Self::SIZE]) -> RecvInfo {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut bits = [0u8; 8];
        bits.copy_from_slice(&b[16..24]);
        RecvInfo {
            kind: u32_at(0),
            len: u32_at(4),
            badge: u32_at(8),
            reply_token: u32_at(12),
            bits: u64::from_le_bytes(bits),
        }
    }

    /// Encodes a child's exit for `bits`.
    pub fn exit_bits(code: i32, reason: ExitReason) -> u64 {
        (code as u32 as u64) | ((reason as u64) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_distinct_and_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            assert!(s == Status::Ok || s.code() < 0, "{} must be negative", s.name());
        }
        let mut codes: alloc::vec::Vec<i32> = Status::ALL.iter().map(|s| s.code()).collect();
        codes.dedup();
        assert_eq!(codes.len(), Status::ALL.len());
        assert_eq!(Status::from_code(-999), None);
    }

    #[test]
    fn the_function_table_is_well_formed() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert!(FUNCTIONS[..i].iter().all(|g| g.name != f.name), "{} twice", f.name);
            assert!(!f.errors.contains(&Status::Ok), "{}: OK is not an error", f.name);
            let mut errors = f.errors.to_vec();
            errors.dedup();
            assert_eq!(errors.len(), f.errors.len(), "{}: a status listed twice", f.name);
            assert_eq!(function(f.name).map(|g| g.name), Some(f.name));
        }
        assert_eq!(function("ipc_recv").unwrap().signature().to_string(), "(i32,i32,i32,i32,i64)->i32");
        assert_eq!(function("task_exit").unwrap().signature().to_string(), "(i32)->()");
        assert_eq!(function("time_now_ns").unwrap().signature().to_string(), "()->i64");
        assert!(function("ipc_sendd").is_none());
    }

    #[test]
    fn recv_info_layout() {
        let info = RecvInfo {
            kind: 2,
            len: 5,
            badge: 7,
            reply_token: 9,
            bits: RecvInfo::exit_bits(-3, ExitReason::StackOverflow),
        };
        let bytes = info.to_bytes();
        assert_eq!(&bytes[0..4], &2u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &9u32.to_le_bytes());
        assert_eq!(RecvInfo::from_bytes(&bytes), info);
        assert_eq!(info.bits as u32 as i32, -3);
        assert_eq!(ExitReason::from_u8((info.bits >> 32) as u8), Some(ExitReason::StackOverflow));
    }
}
