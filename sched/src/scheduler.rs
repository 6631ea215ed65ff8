//! The per-core scheduler loop: each round drains the core's ring, retries
//! what found another core's ring full, fires timers, serves a task
//! waiting for console input, runs the native
//! services that are due, then one fuel slice of the first ready task
//! ([`CoreScheduler::poll`], its steps in that order). The state it works
//! on, and what each step does, is [`crate::percore`].

use alloc::rc::Rc;
use alloc::sync::Arc;
use core::cell::RefCell;

use crate::percore::{CoreState, Poll, run_slice};
use crate::system::System;
use crate::task::Exec;

/// One core's scheduler. Not `Send`: it is created on its core and stays.
pub struct CoreScheduler {
    sys: Arc<System>,
    state: Rc<RefCell<CoreState>>,
}

/// Tasks hold a handle on their core's state (for their system calls),
/// and the state holds the tasks: a cycle. A scheduler that goes away (the
/// hosted runtime at exit, tests; never the kernel's) breaks it by dropping
/// its remaining tasks, or their memory would leak.
impl Drop for CoreScheduler {
    fn drop(&mut self) {
        self.state.borrow_mut().tear_down();
    }
}

impl CoreScheduler {
    /// Creates the scheduler of `core`. Call on that core (or thread).
    pub fn new(sys: Arc<System>, core: usize) -> CoreScheduler {
        assert!(core < sys.cores(), "core {core} out of range");
        CoreScheduler { state: CoreState::new(sys.clone(), core, crate::host::linker), sys }
    }

    pub fn core(&self) -> usize {
        self.state.borrow().core()
    }

    /// Tasks on this core.
    pub fn task_count(&self) -> usize {
        self.state.borrow().task_count()
    }

    /// Whether anything is runnable or waiting to be sent.
    pub fn has_work(&self) -> bool {
        self.state.borrow().has_work(self.sys.now_ns())
    }

    /// Does one round of work, in this order: what arrived on the ring,
    /// envelopes waiting to be retried, expired timers, the native
    /// services, then one slice of the first ready task.
    pub fn poll(&mut self) -> Poll {
        let now = self.sys.now_ns();
        let next = {
            let mut st = self.state.borrow_mut();
            st.drain_ring();
            st.retry_outbox();
            st.fire_timers(now);
            st.serve_console();
            st.run_services();
            st.pick(now)
        };
        let (id, mut task) = match next {
            Ok(next) => next,
            Err(poll) => return poll,
        };
        if matches!(task.exec, Some(Exec::Instantiate { .. })) {
            // Spawned on this core by a task: instantiated on its first turn.
            self.state.borrow_mut().start_task(id, task);
            return Poll::Busy;
        }
        self.state.borrow_mut().begin_slice(id);
        let outcome = run_slice(&self.sys, &mut task);
        self.state.borrow_mut().end_slice(id, task, outcome);
        Poll::Busy
    }

    /// Polls until `done()` holds or `timeout_ns` passes, sleeping via
    /// `idle` when there is nothing to do (told until when at the latest:
    /// [`Poll::Idle`]'s deadline). Returns whether `done()` held.
    pub fn run_until(
        &mut self,
        timeout_ns: u64,
        mut done: impl FnMut() -> bool,
        mut idle: impl FnMut(&Self, Option<u64>),
    ) -> bool {
        let deadline = self.sys.now_ns().saturating_add(timeout_ns);
        loop {
            if done() {
                return true;
            }
            if self.sys.now_ns() > deadline {
                return false;
            }
            if let Poll::Idle { deadline } = self.poll() {
                idle(self, deadline);
            }
        }
    }
}
