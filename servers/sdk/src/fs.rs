//! Files for WasmOS programs: a client of the file server (`fs`).
//!
//! Every call is one `ipc_call` (protocol: `wasmos_ipc::fs`, which lists
//! every op, limit and error). Handles are valid only for this task.
//!
//! ```ignore
//! let fs = Fs::connect()?;
//! let f = fs.open("notes.txt", open::CREATE | open::WRITE)?;
//! fs.write(f, AT_POSITION, b"hello")?;
//! fs.sync()?;                                // durable from here on
//! ```

pub use wasmos_ipc::fs::{
    AT_POSITION, DirEntry, FsError, Kind, MAX_READ, MAX_WRITE, REMOVE_DIR, ROOT, Stat, Statfs, open,
};
use wasmos_ipc::fs::{HEADER, Request};
pub use wasmos_ipc::fs::{Op, SERVICE, decode_reply};

use crate::{Handle, Status};

/// Why a file call failed: the server said no, or the call itself failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    Fs(FsError),
    Ipc(Status),
}

impl From<FsError> for Error {
    fn from(e: FsError) -> Self {
        Error::Fs(e)
    }
}

impl From<Status> for Error {
    fn from(e: Status) -> Self {
        Error::Ipc(e)
    }
}

/// A connection to the file server.
pub struct Fs {
    service: Handle,
}

const MAX: usize = wasmos_ipc::abi::MAX_PAYLOAD;

impl Fs {
    /// Looks up the `fs` service.
    pub fn connect() -> Result<Fs, Status> {
        Ok(Fs { service: crate::lookup(SERVICE)? })
    }

    /// [`Fs::connect`], waiting until the server has registered.
    pub fn connect_wait() -> Fs {
        Fs { service: crate::lookup_wait(SERVICE) }
    }

    /// One raw request: the result word and the reply data copied into
    /// `out` (its length returned).
    pub fn request(
        &self,
        op: Op,
        handle: u32,
        a: u64,
        b: u32,
        data: &[u8],
        out: &mut [u8],
    ) -> Result<(u32, usize), Error> {
        let mut msg = [0u8; MAX];
        if HEADER + data.len() > MAX {
            return Err(Error::Ipc(Status::TooLarge));
        }
        let len = Request { op, handle, a, b, data }.encode(&mut msg);
        let mut reply = [0u8; MAX];
        let n = crate::call(self.service, &msg[..len], &mut reply)?;
        let (result, body) = decode_reply(&reply[..n])?;
        let copied = body.len().min(out.len());
        out[..copied].copy_from_slice(&body[..copied]);
        Ok((result?, copied))
    }

    fn stat_reply(&self, op: Op, handle: u32, a: u64, data: &[u8]) -> Result<(u32, Stat), Error> {
        let mut raw = [0u8; Stat::LEN];
        let (r, n) = self.request(op, handle, a, 0, data, &mut raw)?;
        Ok((r, Stat::decode(&raw[..n]).ok_or(Error::Fs(FsError::BadRequest))?))
    }

    /// Opens `path` (from the root) with [`open`] flags.
    pub fn open(&self, path: &str, flags: u64) -> Result<u32, Error> {
        self.open_at(ROOT, path, flags).map(|(h, _)| h)
    }

    /// Opens `path` relative to directory handle `dir`; the handle and what it is.
    pub fn open_at(&self, dir: u32, path: &str, flags: u64) -> Result<(u32, Stat), Error> {
        self.stat_reply(Op::Open, dir, flags, path.as_bytes())
    }

    pub fn close(&self, h: u32) -> Result<(), Error> {
        self.request(Op::Close, h, 0, 0, &[], &mut []).map(drop)
    }

    /// Reads at `offset` (or [`AT_POSITION`]) into `buf` (at most [`MAX_READ`]).
    pub fn read(&self, h: u32, offset: u64, buf: &mut [u8]) -> Result<usize, Error> {
        let max = buf.len().min(MAX_READ) as u32;
        self.request(Op::Read, h, offset, max, &[], buf).map(|(_, n)| n)
    }

    /// Writes `data` (at most [`MAX_WRITE`] bytes) at `offset` (or [`AT_POSITION`]).
    pub fn write(&self, h: u32, offset: u64, data: &[u8]) -> Result<usize, Error> {
        self.request(Op::Write, h, offset, 0, data, &mut []).map(|(n, _)| n as usize)
    }

    /// Writes all of `data` at the handle's position, in pieces.
    pub fn write_all(&self, h: u32, data: &[u8]) -> Result<(), Error> {
        for chunk in data.chunks(MAX_WRITE) {
            self.write(h, AT_POSITION, chunk)?;
        }
        Ok(())
    }

    /// Moves the position (`whence` 0 set, 1 current, 2 end); the new one.
    pub fn seek(&self, h: u32, offset: i64, whence: u32) -> Result<u64, Error> {
        let mut raw = [0u8; 8];
        self.request(Op::Seek, h, offset as u64, whence, &[], &mut raw)?;
        Ok(u64::from_le_bytes(raw))
    }

    /// What `path` (from the root) is.
    pub fn stat(&self, path: &str) -> Result<Stat, Error> {
        self.stat_reply(Op::Stat, ROOT, 0, path.as_bytes()).map(|(_, s)| s)
    }

    /// Entries of directory `dir` after `cookie`, as raw records in `buf`
    /// (decode with [`DirEntry::decode_all`]); returns (count, bytes).
    pub fn readdir(&self, dir: u32, cookie: u64, buf: &mut [u8]) -> Result<(u32, usize), Error> {
        self.request(Op::Readdir, dir, cookie, 0, &[], buf)
    }

    pub fn mkdir(&self, path: &str) -> Result<(), Error> {
        self.request(Op::Mkdir, ROOT, 0, 0, path.as_bytes(), &mut []).map(drop)
    }

    /// Removes a file, or with `dir` an empty directory.
    pub fn unlink(&self, path: &str, dir: bool) -> Result<(), Error> {
        self.request(Op::Unlink, ROOT, 0, if dir { REMOVE_DIR } else { 0 }, path.as_bytes(), &mut []).map(drop)
    }

    pub fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        let mut both = [0u8; 2 * wasmos_ipc::fs::MAX_PATH];
        let (a, b) = (from.as_bytes(), to.as_bytes());
        if a.len() + b.len() > both.len() {
            return Err(Error::Fs(FsError::NameTooLong));
        }
        both[..a.len()].copy_from_slice(a);
        both[a.len()..a.len() + b.len()].copy_from_slice(b);
        self.request(Op::Rename, ROOT, 0, a.len() as u32, &both[..a.len() + b.len()], &mut []).map(drop)
    }

    pub fn truncate(&self, h: u32, size: u64) -> Result<(), Error> {
        self.request(Op::Truncate, h, size, 0, &[], &mut []).map(drop)
    }

    /// Everything written so far is on the disk when this returns `Ok`.
    pub fn sync(&self) -> Result<(), Error> {
        self.request(Op::Sync, ROOT, 0, 0, &[], &mut []).map(drop)
    }

    pub fn statfs(&self) -> Result<Statfs, Error> {
        let mut raw = [0u8; Statfs::LEN];
        let (_, n) = self.request(Op::Statfs, ROOT, 0, 0, &[], &mut raw)?;
        Statfs::decode(&raw[..n]).ok_or(Error::Fs(FsError::BadRequest))
    }
}
