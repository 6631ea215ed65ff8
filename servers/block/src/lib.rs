//! The block service, for the kernel and the hosted runtime.
//!
//! Owns the server side of the block protocol ([`wasmos_ipc::block`]):
//! decoding and checking every request (form, range, limits) before a
//! [`Disk`] is touched, and answering with the protocol's error codes. It
//! is a [`wasmos_sched::NativeService`], like the `tcp` service: a Rust
//! server on one core that tasks reach through ordinary IPC, and only
//! tasks that were handed a capability to it (it has no name). What moves
//! the sectors is a [`Disk`]:
//!
//! - virtio-blk on bare metal (`kernel/src/blk/`);
//! - [`FileDisk`] (feature `std`): a disk image file, for `wasmos-hosted`;
//! - [`MemDisk`]: memory, for tests.
//!
//! # Polled now, interrupt-driven later
//! A [`Disk`] call returns when the device is done (virtio-blk's
//! synchronous path: the request is queued and its completion polled, a few
//! microseconds under QEMU). With device interrupts (issue #15) the
//! virtio disk can submit and return, keep the caller's `ReplyTo`, and
//! answer from [`NativeService::poll`] when the interrupt says the request
//! completed; the protocol and this crate's checks stay as they are.

#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;

use wasmos_ipc::block::{BlockError, Info, Op, Request as BlockRequest, SECTOR, decode_result, result_reply};
use wasmos_sched::{NativeCtx, NativeService, Request};

#[cfg(feature = "std")]
mod file;
#[cfg(feature = "std")]
pub use file::FileDisk;

/// A disk: whole sectors in and out. Ranges are checked by the service
/// before a call reaches here.
pub trait Disk: Send {
    /// Size in 512-byte sectors.
    fn sectors(&self) -> u64;
    fn read_only(&self) -> bool;
    /// Reads `buf.len() / 512` sectors from `lba` into `buf`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError>;
    /// Writes `data.len() / 512` sectors at `lba`.
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BlockError>;
    /// Returns when every write before it is on stable storage.
    fn flush(&mut self) -> Result<(), BlockError>;
}

/// Counters of a block service.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
    pub refused: u64,
}

/// The block service over disk `D`.
pub struct BlockService<D: Disk> {
    disk: D,
    stats: Stats,
    /// One read reply's worth of buffer, kept between requests.
    buf: Vec<u8>,
}

impl<D: Disk> BlockService<D> {
    pub fn new(disk: D) -> BlockService<D> {
        BlockService { disk, stats: Stats::default(), buf: Vec::new() }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn info(&self) -> Info {
        Info::new(self.disk.sectors(), self.disk.read_only())
    }

    /// Serves one request: the reply payload (see the protocol: a `READ`'s
    /// data, or a result word with `INFO`'s record after it).
    pub fn handle(&mut self, bytes: &[u8]) -> Vec<u8> {
        match self.serve(bytes) {
            Ok(reply) => reply,
            Err(e) => {
                self.stats.refused += 1;
                result_reply(Err(e)).to_vec()
            }
        }
    }

    fn serve(&mut self, bytes: &[u8]) -> Result<Vec<u8>, BlockError> {
        let req = BlockRequest::decode(bytes)?;
        req.check_range(self.disk.sectors())?;
        match req.op {
            Op::Info => {
                let mut reply = result_reply(Ok(())).to_vec();
                reply.extend_from_slice(&self.info().encode());
                Ok(reply)
            }
            Op::Read => {
                self.buf.resize(req.count as usize * SECTOR, 0);
                self.disk.read(req.lba, &mut self.buf)?;
                self.stats.reads += 1;
                Ok(core::mem::take(&mut self.buf))
            }
            Op::Write => {
                if self.disk.read_only() {
                    return Err(BlockError::ReadOnly);
                }
                self.disk.write(req.lba, req.data)?;
                self.stats.writes += 1;
                Ok(result_reply(Ok(())).to_vec())
            }
            Op::Flush => {
                self.disk.flush()?;
                self.stats.flushes += 1;
                Ok(result_reply(Ok(())).to_vec())
            }
        }
    }
}

impl<D: Disk> NativeService for BlockService<D> {
    fn receive(&mut self, ctx: &mut NativeCtx<'_>, request: Request) {
        // Every request is a call; a one-way message has nowhere to put its
        // answer and is dropped (the sender learns nothing it could act on).
        let Some(reply) = request.reply else { return };
        let out = self.handle(request.payload.as_slice());
        ctx.reply(reply, Ok(&out));
        // A READ reply's buffer comes back for the next one.
        if out.len() > 4 {
            self.buf = out;
        }
    }

    fn poll(&mut self, _ctx: &mut NativeCtx<'_>) -> Option<u64> {
        None
    }
}

/// A disk in memory (tests, and a scratch disk).
pub struct MemDisk {
    pub bytes: Vec<u8>,
    pub read_only: bool,
    /// Flushes so far.
    pub flushes: u64,
}

impl MemDisk {
    pub fn new(sectors: u64) -> MemDisk {
        MemDisk { bytes: alloc::vec![0; sectors as usize * SECTOR], read_only: false, flushes: 0 }
    }

    fn range(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, BlockError> {
        let start = (lba as usize).checked_mul(SECTOR).ok_or(BlockError::OutOfRange)?;
        let end = start.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or(BlockError::OutOfRange)?;
        Ok(start..end)
    }
}

impl Disk for MemDisk {
    fn sectors(&self) -> u64 {
        (self.bytes.len() / SECTOR) as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        let r = self.range(lba, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BlockError> {
        let r = self.range(lba, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.flushes += 1;
        Ok(())
    }
}

/// Decodes an `INFO` reply (for clients and tests).
pub fn decode_info(reply: &[u8]) -> Result<Info, BlockError> {
    Info::decode(decode_result(reply)?).ok_or(BlockError::BadRequest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmos_ipc::block::{HEADER, MAX_READ_SECTORS, MAX_WRITE_SECTORS, decode_read_reply};

    fn req(op: Op, lba: u64, count: u32, data: &[u8]) -> Vec<u8> {
        let mut out = alloc::vec![0u8; HEADER + data.len()];
        let n = BlockRequest { op, count, lba, data }.encode(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn read_write_flush_round_trip() {
        let mut s = BlockService::new(MemDisk::new(64));
        let info = decode_info(&s.handle(&req(Op::Info, 0, 0, &[]))).unwrap();
        assert_eq!((info.sectors, info.sector_size, info.max_read, info.max_write, info.flags), (64, 512, 8, 7, 0));
        let data: Vec<u8> = (0..7 * SECTOR).map(|i| (i % 251) as u8).collect();
        assert_eq!(decode_result(&s.handle(&req(Op::Write, 57, 7, &data))), Ok(&[][..]));
        let back = s.handle(&req(Op::Read, 56, 8, &[]));
        let back = decode_read_reply(&back, 8).unwrap();
        assert_eq!(&back[SECTOR..], &data[..], "sectors 57..64 are what was written");
        assert!(back[..SECTOR].iter().all(|&b| b == 0));
        assert_eq!(decode_result(&s.handle(&req(Op::Flush, 0, 0, &[]))), Ok(&[][..]));
        assert_eq!(s.disk.flushes, 1);
        assert_eq!(s.stats(), Stats { reads: 1, writes: 1, flushes: 1, refused: 0 });
    }

    #[test]
    fn bad_requests_get_their_codes_and_touch_nothing() {
        let mut s = BlockService::new(MemDisk::new(16));
        let err = |s: &mut BlockService<MemDisk>, bytes: &[u8]| decode_result(&s.handle(bytes)).unwrap_err();
        assert_eq!(err(&mut s, &req(Op::Read, 9, 8, &[])), BlockError::OutOfRange);
        assert_eq!(err(&mut s, &req(Op::Read, u64::MAX, 1, &[])), BlockError::OutOfRange);
        assert_eq!(err(&mut s, &req(Op::Read, 0, MAX_READ_SECTORS + 1, &[])), BlockError::TooLarge);
        assert_eq!(err(&mut s, &req(Op::Write, 0, MAX_WRITE_SECTORS + 1, &[0; 8 * SECTOR][..])), BlockError::TooLarge);
        assert_eq!(err(&mut s, &req(Op::Write, 15, 2, &[1; 2 * SECTOR])), BlockError::OutOfRange);
        assert_eq!(err(&mut s, &req(Op::Write, 0, 2, &[1; SECTOR])), BlockError::BadRequest);
        assert_eq!(err(&mut s, &[1, 2, 3]), BlockError::BadRequest);
        assert!(s.disk.bytes.iter().all(|&b| b == 0), "no refused write reached the disk");
        s.disk.read_only = true;
        assert_eq!(err(&mut s, &req(Op::Write, 0, 1, &[1; SECTOR])), BlockError::ReadOnly);
        assert_eq!(s.stats().refused, 8);
    }
}
