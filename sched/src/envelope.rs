//! What travels: the items that wait in a task's inbox (`Incoming`),
//! the envelopes that carry them and everything else between cores
//! (`Envelope`, on the per-core rings), the request that starts a task
//! on its core (`SpawnRequest`) and how a task ended ([`TaskExit`]).
//!
//! It names the things the other modules pass each other and knows
//! nothing of how they are scheduled or delivered (it uses only `quota`,
//! for the charge a queued item carries, and `service`, for the service
//! a start envelope carries).

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use wasmi::Module;
use wasmos_ipc::abi::{ExitReason, Status};
use wasmos_ipc::caps::Cap;
use wasmos_ipc::ids::TaskId;
use wasmos_ipc::message::{Message, Payload};
use wasmos_ipc::names::Namespace;

use crate::quota::QueueCharge;

/// Something waiting in a task's inbox.
pub(crate) enum Incoming {
    /// `_charge`: the bytes it holds, charged to its sender until it is
    /// received or dropped (returned by its `Drop`).
    Message {
        from: TaskId,
        msg: Message,
        _charge: QueueCharge,
    },
    Call {
        from: TaskId,
        msg: Message,
        call: u64,
    },
    Grant {
        badge: u32,
        cap: Cap,
        _charge: QueueCharge,
    },
    ChildExit {
        child_handle: i32,
        bits: u64,
    },
    /// Never queued: OR-ed into `TaskData::notifications` on delivery.
    Notification {
        bits: u64,
    },
}

impl Incoming {
    pub(crate) fn sender(&self) -> Option<TaskId> {
        match self {
            Incoming::Message { from, .. } | Incoming::Call { from, .. } => Some(*from),
            _ => None,
        }
    }
}

/// Something travelling to another core.
pub(crate) enum Envelope {
    /// A message, call, notification or child-exit report for a task.
    Deliver { to: TaskId, item: Incoming },
    /// The answer to an `ipc_call` (or why there will be none).
    Reply { to: TaskId, call: u64, result: Result<Payload, Status> },
    /// Start a task on the receiving core.
    Spawn(Box<SpawnRequest>),
    /// Start a native service on the receiving core.
    StartNative(Box<crate::service::NativeStart>),
    /// End a task (`task_kill`): reaped with [`ExitReason::Killed`].
    Kill { to: TaskId },
}

pub(crate) struct SpawnRequest {
    /// Its directory entry (see `System::admit`); the core it starts on.
    pub id: TaskId,
    pub name: String,
    pub module: Module,
    pub caps: Vec<Cap>,
    /// The parent and the handle it holds for the child (the badge of the
    /// child-exit report).
    pub parent: Option<(TaskId, i32)>,
    /// May read boot files (only the init task).
    pub init: bool,
    /// The system names it may look up (`wasmos_ipc::names`).
    pub namespace: Namespace,
    /// argv for WASI programs (argv[0] is the name).
    pub args: Vec<String>,
    /// Environment variables (`K=V`) for WASI programs, after `WASMOS_*`.
    pub env: Vec<String>,
}

/// How a task ended, as recorded for tasks the kernel started itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskExit {
    pub code: i32,
    pub reason: ExitReason,
}
