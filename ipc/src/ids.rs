//! Task identities.
//!
//! A [`TaskId`] names one task for its whole life and after: it encodes
//! the task's slot in the [`crate::directory::Directory`], its home core
//! and the slot's generation (the layout is written down there), so a
//! stale id never names a newer task, and the core a message goes to is
//! read off the id ([`TaskId::core`]). 0 is never a task id.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub u64);
