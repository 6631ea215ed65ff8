//! System counters from the `sysinfo` service (protocol:
//! `wasmos_ipc::sysinfo`): uptime, and per core its live tasks, messages
//! delivered and task slices run.

pub use wasmos_ipc::sysinfo::{CoreInfo, Reply};

use crate::Status;

/// Asks the `sysinfo` service; the reply borrows `buf` (1 KiB fits 50 cores,
/// `MAX_PAYLOAD` bytes fit every core the kernel supports).
pub fn query(buf: &mut [u8]) -> Result<Reply<'_>, Status> {
    let service = crate::lookup(wasmos_ipc::sysinfo::SERVICE)?;
    let result = crate::call(service, &[], buf);
    let _ = crate::close(service);
    let n = result?;
    Reply::decode(&buf[..n]).ok_or(Status::InvalidArgument)
}
