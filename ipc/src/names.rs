//! System service names and namespaces: who may reach which service by name.
//!
//! The name service holds two kinds of names:
//! - **system names** ([`SYSTEM_SERVICES`]: `tcp`, `sysinfo`, `fs`), the
//!   services the platform itself provides. Only a task the kernel started
//!   (init, the platform's own servers) may register one, even while it is
//!   not registered (so nobody can stand in for `tcp` on a machine without
//!   a network card), and a task may look one up only if its
//!   **namespace** holds it;
//! - **public names**, every other name: any task may register one (first
//!   come, at most `MAX_NAMES_PER_TASK` per task) and any task may look it
//!   up, getting a `SEND`-only handle to what the registrant chose to
//!   publish. They are the rendezvous between programs that trust each
//!   other's names.
//!
//! A namespace is a capability in the sense that matters: it is handed
//! down, never taken. A task the kernel starts holds every system name;
//! every other task holds what its parent gave it at spawn
//! (`task_spawn_ns`), which must be part of the parent's own namespace
//! (`NO_CAPABILITY` otherwise); `task_spawn` gives none. Init gives each
//! program what `boot.cfg` lists for it (`names.<file>=tcp,sysinfo`).
//! This is Fuchsia's component namespace cut down to the three services
//! that exist: a set of bits, checked on lookup, not a second tree of
//! handles.

use crate::abi::Status;

/// The names of the services the platform provides, in bit order.
pub const SYSTEM_SERVICES: [&str; 3] = [crate::net::SERVICE, crate::sysinfo::SERVICE, crate::fs::SERVICE];

/// Whether `name` is a system name: reserved for the platform's services.
pub fn is_system(name: &str) -> bool {
    SYSTEM_SERVICES.contains(&name)
}

/// The system names a task may look up (one bit per [`SYSTEM_SERVICES`]
/// entry). Public names are outside it: every task may look them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Namespace(u8);

impl Namespace {
    /// No system service: what `task_spawn` gives a child.
    pub const NONE: Namespace = Namespace(0);
    /// Every system service: what the kernel gives the tasks it starts.
    pub const ALL: Namespace = Namespace((1 << SYSTEM_SERVICES.len()) - 1);

    /// The namespace of a comma-separated list of system names (`"tcp,
    /// sysinfo"`; spaces around names and empty parts are ignored).
    /// A name that is not a system name is `INVALID_ARGUMENT`.
    pub fn parse(list: &str) -> Result<Namespace, Status> {
        let mut bits = 0;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let index = SYSTEM_SERVICES.iter().position(|s| *s == name).ok_or(Status::InvalidArgument)?;
            bits |= 1 << index;
        }
        Ok(Namespace(bits))
    }

    /// Whether a task with this namespace may look `name` up: every public
    /// name, and the system names it holds.
    pub fn allows(self, name: &str) -> bool {
        match SYSTEM_SERVICES.iter().position(|s| *s == name) {
            Some(index) => self.0 & (1 << index) != 0,
            None => true,
        }
    }

    /// Whether every name in `self` is also in `other` (a parent can give
    /// only what it holds).
    pub fn within(self, other: Namespace) -> bool {
        self.0 & !other.0 == 0
    }

    /// The system names it holds, in [`SYSTEM_SERVICES`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        SYSTEM_SERVICES.into_iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_allow() {
        let ns = Namespace::parse(" tcp, ,sysinfo").unwrap();
        assert!(ns.allows("tcp") && ns.allows("sysinfo") && !ns.allows("fs"));
        assert!(ns.allows("my-echo-server"), "public names are open to all");
        assert_eq!(ns.names().collect::<alloc::vec::Vec<_>>(), ["tcp", "sysinfo"]);
        assert_eq!(Namespace::parse(""), Ok(Namespace::NONE));
        assert_eq!(Namespace::parse("tcp,echo"), Err(Status::InvalidArgument));
        assert!(!Namespace::NONE.allows("fs") && Namespace::ALL.allows("fs"));
    }

    #[test]
    fn within() {
        let tcp = Namespace::parse("tcp").unwrap();
        assert!(tcp.within(Namespace::ALL) && Namespace::NONE.within(tcp) && tcp.within(tcp));
        assert!(!Namespace::ALL.within(tcp) && !tcp.within(Namespace::NONE));
        assert!(is_system("sysinfo") && !is_system("sysinfo2"));
    }
}
