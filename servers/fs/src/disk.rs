//! The cache as the `std::io` stream fatfs mounts: a position over the
//! shared [`Cache`]. Shared (`Rc`), so that the server can unmount and
//! remount the volume at a sync and keep the cache.

use std::cell::RefCell;
use std::io::{Error, ErrorKind, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use wasmos_ipc::fs::FsError;

use crate::cache::{Blocks, Cache};

/// The message of the `io::Error` that carries a block device failure
/// through fatfs (mapped back to [`FsError::Io`]).
pub const DEVICE_ERROR: &str = "block device error";

pub struct Disk<B: Blocks> {
    cache: Rc<RefCell<Cache<B>>>,
    pos: u64,
}

impl<B: Blocks> Disk<B> {
    pub fn new(cache: Rc<RefCell<Cache<B>>>) -> Disk<B> {
        Disk { cache, pos: 0 }
    }

    fn clamp(&self, len: usize) -> usize {
        let size = self.cache.borrow().size();
        (size.saturating_sub(self.pos)).min(len as u64) as usize
    }
}

fn device(e: FsError) -> Error {
    Error::other(format!("{DEVICE_ERROR}: {}", e.name()))
}

impl<B: Blocks> Read for Disk<B> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.clamp(buf.len());
        self.cache.borrow_mut().read_at(self.pos, &mut buf[..n]).map_err(device)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<B: Blocks> Write for Disk<B> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.clamp(data.len());
        if n == 0 && !data.is_empty() {
            return Err(Error::new(ErrorKind::WriteZero, "write past the end of the disk"));
        }
        self.cache.borrow_mut().write_at(self.pos, &data[..n]).map_err(device)?;
        self.pos += n as u64;
        Ok(n)
    }

    /// Nothing to do: the cache reaches the disk at a sync only.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<B: Blocks> Seek for Disk<B> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let size = self.cache.borrow().size() as i128;
        let target = match to {
            SeekFrom::Start(n) => n as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
            SeekFrom::End(d) => size + d as i128,
        };
        if !(0..=size).contains(&target) {
            return Err(Error::new(ErrorKind::InvalidInput, "seek outside the disk"));
        }
        self.pos = target as u64;
        Ok(self.pos)
    }
}
