//! The `sysinfo` service protocol: counters of the running system.
//!
//! Call `sysinfo` (found with `service_lookup`) with an empty request; the
//! reply is little-endian: `cores u32`, `uptime_ns u64`, then for each
//! core `tasks u32`, `delivered u64` (messages delivered to tasks on that
//! core, ever), `switches u64` (task slices run, ever). The kernel and the
//! hosted runtime both provide the service (`sched::service::SysInfo`).

/// The service's name in the name service.
pub const SERVICE: &str = "sysinfo";

/// One core's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreInfo {
    pub tasks: u32,
    pub delivered: u64,
    pub switches: u64,
}

const HEAD: usize = 12;
const PER_CORE: usize = 20;

/// Reply length for `cores` cores.
pub const fn reply_len(cores: usize) -> usize {
    HEAD + PER_CORE * cores
}

/// Encodes a reply into `out` (at least [`reply_len`] bytes); returns its
/// length.
pub fn encode(uptime_ns: u64, cores: impl ExactSizeIterator<Item = CoreInfo>, out: &mut [u8]) -> usize {
    let len = reply_len(cores.len());
    out[..4].copy_from_slice(&(cores.len() as u32).to_le_bytes());
    out[4..12].copy_from_slice(&uptime_ns.to_le_bytes());
    for (c, chunk) in cores.zip(out[HEAD..len].chunks_exact_mut(PER_CORE)) {
        chunk[..4].copy_from_slice(&c.tasks.to_le_bytes());
        chunk[4..12].copy_from_slice(&c.delivered.to_le_bytes());
        chunk[12..20].copy_from_slice(&c.switches.to_le_bytes());
    }
    len
}

/// A decoded reply (borrowing the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<'a> {
    pub uptime_ns: u64,
    cores: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Decodes a reply, or `None` if it is malformed.
    pub fn decode(bytes: &'a [u8]) -> Option<Reply<'a>> {
        let n = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let uptime_ns = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
        if bytes.len() != HEAD.checked_add(n.checked_mul(PER_CORE)?)? {
            return None;
        }
        Some(Reply { uptime_ns, cores: &bytes[HEAD..] })
    }

    pub fn core_count(&self) -> usize {
        self.cores.len() / PER_CORE
    }

    pub fn cores(&self) -> impl Iterator<Item = CoreInfo> + 'a {
        self.cores.chunks_exact(PER_CORE).map(|c| CoreInfo {
            tasks: u32::from_le_bytes(c[..4].try_into().expect("4")),
            delivered: u64::from_le_bytes(c[4..12].try_into().expect("8")),
            switches: u64::from_le_bytes(c[12..20].try_into().expect("8")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed() {
        let cores = [CoreInfo { tasks: 3, delivered: 1 << 40, switches: 9 }, CoreInfo::default()];
        let mut buf = [0u8; 64];
        let n = encode(123, cores.into_iter(), &mut buf);
        assert_eq!(n, reply_len(2));
        let reply = Reply::decode(&buf[..n]).unwrap();
        assert_eq!(reply.uptime_ns, 123);
        assert_eq!(reply.core_count(), 2);
        assert!(reply.cores().eq(cores));
        assert_eq!(Reply::decode(&buf[..n - 1]), None);
        assert_eq!(Reply::decode(&[]), None);
    }
}
