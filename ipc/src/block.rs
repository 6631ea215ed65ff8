//! The block protocol: what a client (the file server) says to a block
//! device server.
//!
//! A block server owns one disk: virtio-blk on bare metal
//! (`kernel/src/blk/`), a file on the host in the hosted runtime
//! (`wasmos-block`'s `FileDisk`). Both speak exactly this protocol, so one
//! file server binary runs over either. A block server has **no name** in
//! the name service: whoever starts it (the kernel, `wasmos-hosted`) hands
//! a capability to it to the file server at spawn, and only holders of
//! that capability can reach the raw disk.
//!
//! The unit is the 512-byte [`SECTOR`] (virtio-blk's unit, whatever the
//! disk's physical block size). Sector numbers (LBA) count from 0.
//!
//! # Requests
//! Every request is an `ipc_call` whose payload is a 16-byte header,
//! little-endian, then data (for `WRITE` only):
//!
//! | bytes | field | meaning |
//! |---|---|---|
//! | 0 | `op` | an [`Op`] |
//! | 1..4 | — | zero |
//! | 4..8 | `count` | sectors (`READ`, `WRITE`); zero otherwise |
//! | 8..16 | `lba` | first sector (`READ`, `WRITE`); zero otherwise |
//!
//! | op | data | reply on success |
//! |---|---|---|
//! | `INFO` | — | result `0`, then [`Info`] ([`Info::LEN`] bytes) |
//! | `READ` | — | the sectors themselves: `count × 512` bytes, no result word |
//! | `WRITE` | `count × 512` bytes | result `0` |
//! | `FLUSH` | — | result `0` once everything written before it is on stable storage |
//!
//! # Replies
//! A reply is an `i32` result: `0`, or a negative [`BlockError`]. The one
//! exception is a successful `READ`, whose reply is the data alone; since
//! a sector is 512 bytes, a 4-byte reply is always a result word and the
//! two cannot be confused ([`decode_read_reply`]).
//!
//! # Limits, and larger I/O
//! A message is at most [`MAX_PAYLOAD`] (4096) bytes, so one `READ` moves
//! at most [`MAX_READ_SECTORS`] (8) sectors and one `WRITE` at most
//! [`MAX_WRITE_SECTORS`] (7: the header takes room). Larger transfers are
//! split by the client into consecutive requests; each is independent (no
//! ordering between requests is promised beyond "a `FLUSH` covers every
//! `WRITE` answered before it was sent"). A `WRITE` is answered once the
//! device has taken the data; it is durable only after a `FLUSH`. Writes
//! are atomic per sector at most (the device's own guarantee): a power cut
//! may tear a multi-sector `WRITE`.
//!
//! # Errors
//! Malformed requests ([`BlockError::BadRequest`]), ranges past the end of
//! the disk ([`BlockError::OutOfRange`], also for an `lba + count` that
//! overflows), counts of zero or above the limit ([`BlockError::TooLarge`])
//! are refused before the device is touched. No request can make the
//! server allocate more than one message's worth of memory.

use crate::abi::MAX_PAYLOAD;

/// Bytes per sector.
pub const SECTOR: usize = 512;

/// Request header length.
pub const HEADER: usize = 16;

/// Most sectors one `READ` returns (the reply is the data alone).
pub const MAX_READ_SECTORS: u32 = (MAX_PAYLOAD / SECTOR) as u32;

/// Most sectors one `WRITE` carries (after the header).
pub const MAX_WRITE_SECTORS: u32 = ((MAX_PAYLOAD - HEADER) / SECTOR) as u32;

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Info = 1,
    Read = 2,
    Write = 3,
    Flush = 4,
}

impl Op {
    pub fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Info,
            2 => Op::Read,
            3 => Op::Write,
            4 => Op::Flush,
            _ => return None,
        })
    }
}

/// Errors, as negative result values.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockError {
    /// Short header, unknown op, non-zero padding, data on an op that takes
    /// none, or `WRITE` data that is not `count × 512` bytes.
    BadRequest = -1,
    /// `lba + count` runs past the end of the disk (or overflows).
    OutOfRange = -2,
    /// `count` is zero, or above [`MAX_READ_SECTORS`] / [`MAX_WRITE_SECTORS`].
    TooLarge = -3,
    /// The disk is read-only (`WRITE`).
    ReadOnly = -4,
    /// The device reported an error, or did not answer.
    Io = -5,
}

impl BlockError {
    pub const ALL: [BlockError; 5] =
        [BlockError::BadRequest, BlockError::OutOfRange, BlockError::TooLarge, BlockError::ReadOnly, BlockError::Io];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<BlockError> {
        BlockError::ALL.into_iter().find(|e| e.code() == code)
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockError::BadRequest => "BAD_REQUEST",
            BlockError::OutOfRange => "OUT_OF_RANGE",
            BlockError::TooLarge => "TOO_LARGE",
            BlockError::ReadOnly => "READ_ONLY",
            BlockError::Io => "IO",
        }
    }
}

/// What `INFO` tells: the disk's geometry and the protocol's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Disk size in sectors.
    pub sectors: u64,
    /// Always [`SECTOR`] (stated so a client can check).
    pub sector_size: u32,
    pub max_read: u32,
    pub max_write: u32,
    /// [`Info::READ_ONLY`].
    pub flags: u32,
}

impl Info {
    pub const LEN: usize = 24;
    /// The disk refuses writes.
    pub const READ_ONLY: u32 = 1;

    /// The info of a disk of `sectors` sectors with this protocol's limits.
    pub fn new(sectors: u64, read_only: bool) -> Info {
        Info {
            sectors,
            sector_size: SECTOR as u32,
            max_read: MAX_READ_SECTORS,
            max_write: MAX_WRITE_SECTORS,
            flags: if read_only { Info::READ_ONLY } else { 0 },
        }
    }

    pub fn encode(&self) -> [u8; Info::LEN] {
        let mut b = [0u8; Info::LEN];
        b[0..8].copy_from_slice(&self.sectors.to_le_bytes());
        b[8..12].copy_from_slice(&self.sector_size.to_le_bytes());
        b[12..16].copy_from_slice(&self.max_read.to_le_bytes());
        b[16..20].copy_from_slice(&self.max_write.to_le_bytes());
        b[20..24].copy_from_slice(&self.flags.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Info> {
        if b.len() != Info::LEN {
            return None;
        }
        let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        Some(Info {
            sectors: u64::from_le_bytes(b[0..8].try_into().expect("8 bytes")),
            sector_size: w(8),
            max_read: w(12),
            max_write: w(16),
            flags: w(20),
        })
    }
}

/// A decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: Op,
    pub count: u32,
    pub lba: u64,
    pub data: &'a [u8],
}

impl<'a> Request<'a> {
    /// Decodes and checks a request's form (not its range, which needs the
    /// disk's size: [`Request::check_range`]).
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, BlockError> {
        let header = bytes.get(..HEADER).ok_or(BlockError::BadRequest)?;
        let op = Op::from_u8(header[0]).ok_or(BlockError::BadRequest)?;
        if header[1..4] != [0, 0, 0] {
            return Err(BlockError::BadRequest);
        }
        let count = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let lba = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let data = &bytes[HEADER..];
        match op {
            Op::Info | Op::Flush if count != 0 || lba != 0 || !data.is_empty() => Err(BlockError::BadRequest),
            Op::Read if !data.is_empty() => Err(BlockError::BadRequest),
            Op::Read if count == 0 || count > MAX_READ_SECTORS => Err(BlockError::TooLarge),
            Op::Write if count == 0 || count > MAX_WRITE_SECTORS => Err(BlockError::TooLarge),
            Op::Write if data.len() != count as usize * SECTOR => Err(BlockError::BadRequest),
            _ => Ok(Request { op, count, lba, data }),
        }
    }

    /// `OutOfRange` unless sectors `lba..lba + count` lie on a disk of
    /// `sectors` sectors.
    pub fn check_range(&self, sectors: u64) -> Result<(), BlockError> {
        match self.lba.checked_add(self.count as u64) {
            Some(end) if end <= sectors => Ok(()),
            _ => Err(BlockError::OutOfRange),
        }
    }

    /// Writes the request into `out` (at least `HEADER + data.len()`
    /// bytes) and returns its length.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        out[0] = self.op as u8;
        out[1..4].fill(0);
        out[4..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..16].copy_from_slice(&self.lba.to_le_bytes());
        out[HEADER..HEADER + self.data.len()].copy_from_slice(self.data);
        HEADER + self.data.len()
    }
}

/// A result word as a reply.
pub fn result_reply(result: Result<(), BlockError>) -> [u8; 4] {
    result.err().map_or(0, BlockError::code).to_le_bytes()
}

/// Decodes a reply that is a result word (`INFO`'s carries [`Info`] after
/// it, returned as the rest); `BadRequest` if it is not one.
pub fn decode_result(bytes: &[u8]) -> Result<&[u8], BlockError> {
    let head = bytes.get(..4).ok_or(BlockError::BadRequest)?;
    match i32::from_le_bytes(head.try_into().expect("4 bytes")) {
        0 => Ok(&bytes[4..]),
        code => Err(BlockError::from_code(code).unwrap_or(BlockError::BadRequest)),
    }
}

/// Decodes a `READ` reply of `count` sectors: the data, or the error.
pub fn decode_read_reply(bytes: &[u8], count: u32) -> Result<&[u8], BlockError> {
    if bytes.len() == count as usize * SECTOR {
        return Ok(bytes);
    }
    match decode_result(bytes) {
        Err(e) => Err(e),
        // A success word where data was due, or data of the wrong length.
        Ok(_) => Err(BlockError::BadRequest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(req: Request<'_>) -> alloc::vec::Vec<u8> {
        let mut buf = alloc::vec![0u8; HEADER + req.data.len()];
        let n = req.encode(&mut buf);
        buf.truncate(n);
        buf
    }

    #[test]
    fn limits_fit_one_message() {
        assert_eq!(MAX_READ_SECTORS, 8);
        assert_eq!(MAX_WRITE_SECTORS, 7);
        assert!(HEADER + MAX_WRITE_SECTORS as usize * SECTOR <= MAX_PAYLOAD);
        assert!(MAX_READ_SECTORS as usize * SECTOR <= MAX_PAYLOAD);
    }

    #[test]
    fn requests_round_trip() {
        let data = [7u8; 2 * SECTOR];
        for req in [
            Request { op: Op::Info, count: 0, lba: 0, data: &[] },
            Request { op: Op::Read, count: 8, lba: u64::MAX - 8, data: &[] },
            Request { op: Op::Write, count: 2, lba: 99, data: &data },
            Request { op: Op::Flush, count: 0, lba: 0, data: &[] },
        ] {
            let bytes = encoded(req);
            assert_eq!(Request::decode(&bytes), Ok(req));
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(Request::decode(&[2, 0, 0]), Err(BlockError::BadRequest));
        let mut bad = encoded(Request { op: Op::Read, count: 1, lba: 0, data: &[] });
        bad[0] = 9;
        assert_eq!(Request::decode(&bad), Err(BlockError::BadRequest));
        bad[0] = Op::Read as u8;
        bad[2] = 1;
        assert_eq!(Request::decode(&bad), Err(BlockError::BadRequest), "padding must be zero");
        let read0 = encoded(Request { op: Op::Read, count: 0, lba: 0, data: &[] });
        assert_eq!(Request::decode(&read0), Err(BlockError::TooLarge));
        let read9 = encoded(Request { op: Op::Read, count: 9, lba: 0, data: &[] });
        assert_eq!(Request::decode(&read9), Err(BlockError::TooLarge));
        let short = encoded(Request { op: Op::Write, count: 2, lba: 0, data: &[0; SECTOR] });
        assert_eq!(Request::decode(&short), Err(BlockError::BadRequest));
        let flush_arg = encoded(Request { op: Op::Flush, count: 1, lba: 0, data: &[] });
        assert_eq!(Request::decode(&flush_arg), Err(BlockError::BadRequest));
    }

    #[test]
    fn ranges_are_checked_without_overflow() {
        let req = |lba, count| Request { op: Op::Read, count, lba, data: &[] };
        assert_eq!(req(0, 8).check_range(8), Ok(()));
        assert_eq!(req(1, 8).check_range(8), Err(BlockError::OutOfRange));
        assert_eq!(req(u64::MAX, 2).check_range(u64::MAX), Err(BlockError::OutOfRange));
    }

    #[test]
    fn replies_and_codes() {
        assert_eq!(decode_result(&result_reply(Ok(()))), Ok(&[][..]));
        assert_eq!(decode_result(&result_reply(Err(BlockError::Io))), Err(BlockError::Io));
        let data = [1u8; SECTOR];
        assert_eq!(decode_read_reply(&data, 1), Ok(&data[..]));
        assert_eq!(decode_read_reply(&result_reply(Err(BlockError::OutOfRange)), 1), Err(BlockError::OutOfRange));
        assert_eq!(decode_read_reply(&data[..100], 1), Err(BlockError::BadRequest));
        let info = Info::new(1 << 20, true);
        assert_eq!(Info::decode(&info.encode()), Some(info));
        for e in BlockError::ALL {
            assert_eq!(BlockError::from_code(e.code()), Some(e));
        }
    }
}
