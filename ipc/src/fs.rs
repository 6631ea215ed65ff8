//! The file protocol: what a task says to the file server (`fs`).
//!
//! The file server (`servers/fs`, a Wasm program) keeps a FAT32 volume on
//! a block device (protocol: [`crate::block`]) and serves files to every
//! task that looks up [`SERVICE`]. The same binary runs in QEMU (over
//! virtio-blk) and under `wasmos-hosted` (over a disk image file).
//!
//! # Handles
//! An open file or directory is a *handle*: a `u32` that is valid only for
//! the task that opened it. The server keeps one handle table per client,
//! keyed on the sender's task id, which the kernel puts in
//! `RecvInfo::bits` of every call (task ids are never reused, so a table
//! never passes to a newer task). A handle number sent by any other task
//! is looked up in *that* task's table and is [`FsError::BadHandle`] there,
//! so one client cannot use another's handles even if it learns them.
//! (When badged capabilities exist, issue #17, the key becomes the badge
//! of a per-client capability; the protocol does not change.)
//!
//! Handle `0` is [`ROOT`]: the volume's root directory, open for everyone.
//! Paths are resolved relative to a directory handle.
//!
//! # Paths
//! `/`-separated UTF-8, at most [`MAX_PATH`] bytes, each name at most
//! [`MAX_NAME`] bytes and without the characters FAT forbids
//! (`\ : * ? " < > |`, control characters): else [`FsError::InvalidName`] or
//! [`FsError::NameTooLong`]. Empty names and `.` are skipped; `..` goes up
//! one level, but never above the directory the path is resolved in:
//! a path that would climb out is [`FsError::Escapes`]. A leading `/` is
//! allowed only from [`ROOT`]. FAT compares names without regard to case
//! and keeps the case they were created with. There are no links.
//!
//! # Requests
//! Every request is an `ipc_call`: a 24-byte header, little-endian, then
//! data (a path, or bytes to write):
//!
//! | bytes | field |
//! |---|---|
//! | 0 | `op` ([`Op`]) |
//! | 1..4 | zero |
//! | 4..8 | `handle` |
//! | 8..16 | `a` (u64) |
//! | 16..20 | `b` (u32) |
//! | 20..24 | `c` (u32, zero unless said) |
//!
//! | op | `handle` | `a` | `b` | data | result | reply data |
//! |---|---|---|---|---|---|---|
//! | `OPEN` | directory | [`open`] flags | — | path | new handle | [`Stat`] |
//! | `CLOSE` | any | — | — | — | `0` | — |
//! | `READ` | file | offset, or [`AT_POSITION`] | max bytes | — | bytes read (`0` = end) | the bytes |
//! | `WRITE` | file | offset, or [`AT_POSITION`] | — | the bytes | bytes written (all of them) | — |
//! | `SEEK` | file or dir | offset (`i64`) | whence 0/1/2 (set/current/end) | — | `0` | new position (u64) |
//! | `STAT` | any | — | — | path (empty = the handle itself) | `0` | [`Stat`] |
//! | `READDIR` | directory | cookie (`0` = first entry) | — | — | entries | [`DirEntry`] records |
//! | `MKDIR` | directory | — | — | path | `0` | — |
//! | `UNLINK` | directory | — | [`REMOVE_DIR`] or 0 | path | `0` | — |
//! | `RENAME` | directory | — | length of the old path | old path, then new path | `0` | — |
//! | `TRUNCATE` | file | new size | — | — | `0` | — |
//! | `SYNC` | any | — | — | — | `0` | — |
//! | `STATFS` | any | — | — | — | `0` | [`Statfs`] |
//!
//! `READ` and `WRITE` at [`AT_POSITION`] use and advance the handle's
//! position; a handle opened with [`open::APPEND`] writes at the end
//! whatever the offset. A write past the end fills the gap with zeros.
//! `READDIR` returns as many whole entries as fit in one reply, each with
//! the cookie of the entry after it; `.` and `..` are not listed. `UNLINK`
//! removes a file, or with [`REMOVE_DIR`] an empty directory.
//!
//! # Replies
//! An `i32` result (`>= 0`, or a negative [`FsError`]), then data.
//!
//! # Limits (exhaustion is an error code, never a crash)
//! [`MAX_OPEN`] handles per client ([`FsError::TooManyOpen`]),
//! [`MAX_HANDLES`] in all and [`MAX_CLIENTS`] clients with open handles
//! ([`FsError::NoResources`]); [`MAX_READ`] bytes per `READ` (more is
//! clamped), [`MAX_WRITE`] per `WRITE` (a longer request cannot be sent);
//! [`MAX_PATH`] bytes per path. Nothing else a client sends makes the
//! server allocate.
//!
//! # Durability (FAT has no journal)
//! The server caches the disk: writes land in its cache and reach the disk
//! at a *sync*: on `SYNC`, [`SYNC_DELAY_NS`] after the first unsynced
//! change, or when the unsynced changes reach the cache's bound. A sync
//! writes every changed sector with the volume's dirty flag set, then
//! clears the flag and issues a block `FLUSH`; `SYNC` answers after that
//! `FLUSH`, so **what was written before a `SYNC` that returned `0`
//! survives a crash or power cut**. A crash (or the server's death) at any
//! moment *outside* a sync loses the changes since the last sync and leaves
//! the volume exactly as that sync left it: consistent. A crash *during* a
//! sync can leave what FAT without a journal leaves: lost clusters, or a
//! file whose length disagrees with its chain; the dirty flag tells
//! `fsck.fat` (and Linux) to check, and `fsck.fat -a` repairs it.

use crate::abi::MAX_PAYLOAD;

/// The service's name in the name service.
pub const SERVICE: &str = "fs";

/// Request header length.
pub const HEADER: usize = 24;

/// The root directory's handle, valid for every client.
pub const ROOT: u32 = 0;

/// `a` of `READ`/`WRITE`: at the handle's position (which then advances).
pub const AT_POSITION: u64 = u64::MAX;

/// `b` of `UNLINK`: remove an empty directory instead of a file.
pub const REMOVE_DIR: u32 = 1;

/// Longest path, in bytes.
pub const MAX_PATH: usize = 1024;
/// Longest name (one path component), in bytes; FAT's long names hold 255
/// UTF-16 units.
pub const MAX_NAME: usize = 255;
/// Most bytes one `READ` returns.
pub const MAX_READ: usize = MAX_PAYLOAD - 4;
/// Most bytes one `WRITE` carries.
pub const MAX_WRITE: usize = MAX_PAYLOAD - HEADER;
/// Open handles one client may hold.
pub const MAX_OPEN: usize = 64;
/// Open handles all clients together may hold.
pub const MAX_HANDLES: usize = 1024;
/// Clients with open handles at once.
pub const MAX_CLIENTS: usize = 128;
/// Largest file FAT can hold (4 GiB - 1).
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;
/// How long an unsynced change waits before the server syncs by itself.
pub const SYNC_DELAY_NS: u64 = 2_000_000_000;

/// `OPEN` flags (`a`).
pub mod open {
    /// Create the file if it does not exist.
    pub const CREATE: u64 = 1;
    /// With `CREATE`: fail with `Exists` if it does.
    pub const EXCLUSIVE: u64 = 2;
    /// Cut the file to length 0 (needs `WRITE`).
    pub const TRUNCATE: u64 = 4;
    /// The path must name a directory (`NotDir` otherwise).
    pub const DIRECTORY: u64 = 8;
    pub const READ: u64 = 16;
    pub const WRITE: u64 = 32;
    /// Every write goes to the end of the file.
    pub const APPEND: u64 = 64;
    pub const ALL: u64 = 127;
}

#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open = 1,
    Close = 2,
    Read = 3,
    Write = 4,
    Seek = 5,
    Stat = 6,
    Readdir = 7,
    Mkdir = 8,
    Unlink = 9,
    Rename = 10,
    Truncate = 11,
    Sync = 12,
    Statfs = 13,
}

impl Op {
    pub const ALL: [Op; 13] = [
        Op::Open,
        Op::Close,
        Op::Read,
        Op::Write,
        Op::Seek,
        Op::Stat,
        Op::Readdir,
        Op::Mkdir,
        Op::Unlink,
        Op::Rename,
        Op::Truncate,
        Op::Sync,
        Op::Statfs,
    ];

    pub fn from_u8(v: u8) -> Option<Op> {
        Op::ALL.into_iter().find(|op| *op as u8 == v)
    }

    /// Whether the op carries a path in its data.
    fn takes_path(self) -> bool {
        matches!(self, Op::Open | Op::Stat | Op::Mkdir | Op::Unlink | Op::Rename)
    }
}

/// WASI preview 1 errno values the file calls use (the numbers of the WASI
/// specification, `wasi_snapshot_preview1`).
pub mod errno {
    pub const SUCCESS: u16 = 0;
    pub const BADF: u16 = 8;
    pub const EXIST: u16 = 20;
    pub const FBIG: u16 = 22;
    pub const INVAL: u16 = 28;
    pub const IO: u16 = 29;
    pub const ISDIR: u16 = 31;
    pub const MFILE: u16 = 33;
    pub const NAMETOOLONG: u16 = 37;
    pub const NFILE: u16 = 41;
    pub const NODEV: u16 = 43;
    pub const NOENT: u16 = 44;
    pub const NOSPC: u16 = 51;
    pub const NOTDIR: u16 = 54;
    pub const NOTEMPTY: u16 = 55;
    pub const NOTSUP: u16 = 58;
    pub const ROFS: u16 = 69;
    pub const NOTCAPABLE: u16 = 76;
}

/// Errors, as negative result values, each with its WASI errno.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsError {
    /// Short header, unknown op, non-zero padding, unknown flags, data where
    /// none belongs, a path that is not UTF-8. (EINVAL)
    BadRequest = -1,
    /// No such handle in the caller's table (never opened, closed, or
    /// another task's), or the wrong kind for the op. (EBADF)
    BadHandle = -2,
    /// The path names nothing. (ENOENT)
    NotFound = -3,
    /// It exists (`CREATE | EXCLUSIVE`, `MKDIR`, `RENAME` onto a directory). (EEXIST)
    Exists = -4,
    /// A directory was needed. (ENOTDIR)
    NotDir = -5,
    /// A file was needed. (EISDIR)
    IsDir = -6,
    /// The directory is not empty (`UNLINK` with `REMOVE_DIR`). (ENOTEMPTY)
    NotEmpty = -7,
    /// The volume is full. (ENOSPC)
    NoSpace = -8,
    /// A path longer than [`MAX_PATH`] or a name longer than [`MAX_NAME`]. (ENAMETOOLONG)
    NameTooLong = -9,
    /// A name FAT cannot store, or an argument out of range (bad whence, a
    /// negative position, renaming a directory into itself). (EINVAL)
    InvalidName = -10,
    /// The path climbs out of the directory it is resolved in. (ENOTCAPABLE)
    Escapes = -11,
    /// The client has [`MAX_OPEN`] handles open. (EMFILE)
    TooManyOpen = -12,
    /// The server is out of handles, client tables or memory. (ENFILE)
    NoResources = -13,
    /// The disk failed. (EIO)
    Io = -14,
    /// The volume's structures are inconsistent. (EIO)
    Corrupt = -15,
    /// The handle was not opened for this (`READ` on a write-only handle,
    /// `WRITE` or `TRUNCATE` on a read-only one). (EBADF)
    NotPermitted = -16,
    /// The file would grow past [`MAX_FILE_SIZE`]. (EFBIG)
    TooBig = -17,
    /// The server has no disk (no block device, or none it can mount). (ENODEV)
    NoDisk = -18,
    /// The disk is read-only. (EROFS)
    ReadOnly = -19,
    /// The on-disk format cannot do it: moving a directory to another
    /// parent (FAT's `..` entry would have to be rewritten). (ENOTSUP)
    Unsupported = -20,
}

impl FsError {
    pub const ALL: [FsError; 20] = [
        FsError::BadRequest,
        FsError::BadHandle,
        FsError::NotFound,
        FsError::Exists,
        FsError::NotDir,
        FsError::IsDir,
        FsError::NotEmpty,
        FsError::NoSpace,
        FsError::NameTooLong,
        FsError::InvalidName,
        FsError::Escapes,
        FsError::TooManyOpen,
        FsError::NoResources,
        FsError::Io,
        FsError::Corrupt,
        FsError::NotPermitted,
        FsError::TooBig,
        FsError::NoDisk,
        FsError::ReadOnly,
        FsError::Unsupported,
    ];

    pub fn code(self) -> i32 {
        self as i32
    }

    pub fn from_code(code: i32) -> Option<FsError> {
        FsError::ALL.into_iter().find(|e| e.code() == code)
    }

    /// The WASI errno a WASI call reports for this error.
    pub fn errno(self) -> u16 {
        match self {
            FsError::BadRequest | FsError::InvalidName => errno::INVAL,
            FsError::BadHandle | FsError::NotPermitted => errno::BADF,
            FsError::NotFound => errno::NOENT,
            FsError::Exists => errno::EXIST,
            FsError::NotDir => errno::NOTDIR,
            FsError::IsDir => errno::ISDIR,
            FsError::NotEmpty => errno::NOTEMPTY,
            FsError::NoSpace => errno::NOSPC,
            FsError::NameTooLong => errno::NAMETOOLONG,
            FsError::Escapes => errno::NOTCAPABLE,
            FsError::TooManyOpen => errno::MFILE,
            FsError::NoResources => errno::NFILE,
            FsError::Io | FsError::Corrupt => errno::IO,
            FsError::TooBig => errno::FBIG,
            FsError::NoDisk => errno::NODEV,
            FsError::ReadOnly => errno::ROFS,
            FsError::Unsupported => errno::NOTSUP,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FsError::BadRequest => "BAD_REQUEST",
            FsError::BadHandle => "BAD_HANDLE",
            FsError::NotFound => "NOT_FOUND",
            FsError::Exists => "EXISTS",
            FsError::NotDir => "NOT_DIR",
            FsError::IsDir => "IS_DIR",
            FsError::NotEmpty => "NOT_EMPTY",
            FsError::NoSpace => "NO_SPACE",
            FsError::NameTooLong => "NAME_TOO_LONG",
            FsError::InvalidName => "INVALID_NAME",
            FsError::Escapes => "ESCAPES",
            FsError::TooManyOpen => "TOO_MANY_OPEN",
            FsError::NoResources => "NO_RESOURCES",
            FsError::Io => "IO",
            FsError::Corrupt => "CORRUPT",
            FsError::NotPermitted => "NOT_PERMITTED",
            FsError::TooBig => "TOO_BIG",
            FsError::NoDisk => "NO_DISK",
            FsError::ReadOnly => "READ_ONLY",
            FsError::Unsupported => "UNSUPPORTED",
        }
    }
}

/// What a handle or path is.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File = 1,
    Dir = 2,
}

/// `STAT` / `OPEN` reply data: 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    pub size: u64,
    /// Last modification and creation, in ns since 1970 as FAT records
    /// them (2 s resolution, no time zone; 1980-01-01 when the machine has
    /// no clock to stamp with).
    pub modified_ns: u64,
    pub created_ns: u64,
}

impl Stat {
    pub const LEN: usize = 32;

    pub fn encode(&self) -> [u8; Stat::LEN] {
        let mut b = [0u8; Stat::LEN];
        b[0] = self.kind as u8;
        b[8..16].copy_from_slice(&self.size.to_le_bytes());
        b[16..24].copy_from_slice(&self.modified_ns.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_ns.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Stat> {
        if b.len() != Stat::LEN {
            return None;
        }
        let kind = match b[0] {
            1 => Kind::File,
            2 => Kind::Dir,
            _ => return None,
        };
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Stat { kind, size: u(8), modified_ns: u(16), created_ns: u(24) })
    }
}

/// `STATFS` reply data: 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statfs {
    /// Allocation unit (the cluster), bytes.
    pub cluster_size: u32,
    /// FAT type: 12, 16 or 32.
    pub fat_type: u32,
    pub total_clusters: u64,
    pub free_clusters: u64,
}

impl Statfs {
    pub const LEN: usize = 24;

    pub fn encode(&self) -> [u8; Statfs::LEN] {
        let mut b = [0u8; Statfs::LEN];
        b[0..4].copy_from_slice(&self.cluster_size.to_le_bytes());
        b[4..8].copy_from_slice(&self.fat_type.to_le_bytes());
        b[8..16].copy_from_slice(&self.total_clusters.to_le_bytes());
        b[16..24].copy_from_slice(&self.free_clusters.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Statfs> {
        if b.len() != Statfs::LEN {
            return None;
        }
        let w = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(Statfs { cluster_size: w(0), fat_type: w(4), total_clusters: u(8), free_clusters: u(16) })
    }
}

/// One `READDIR` record, 19 bytes then the name: `next u64, kind u8,
/// size u64, name_len u16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// The cookie to pass to get the entries after this one.
    pub next: u64,
    pub kind: Kind,
    pub size: u64,
    pub name: &'a str,
}

impl<'a> DirEntry<'a> {
    /// Record length without the name.
    pub const FIXED: usize = 19;

    pub fn len(&self) -> usize {
        DirEntry::FIXED + self.name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_empty()
    }

    /// Writes the record at the start of `out` if it fits; returns its length.
    pub fn encode_into(&self, out: &mut [u8]) -> Option<usize> {
        let n = self.len();
        let out = out.get_mut(..n)?;
        out[0..8].copy_from_slice(&self.next.to_le_bytes());
        out[8] = self.kind as u8;
        out[9..17].copy_from_slice(&self.size.to_le_bytes());
        out[17..19].copy_from_slice(&(self.name.len() as u16).to_le_bytes());
        out[19..].copy_from_slice(self.name.as_bytes());
        Some(n)
    }

    /// Decodes the records of a `READDIR` reply.
    pub fn decode_all(mut b: &'a [u8]) -> impl Iterator<Item = DirEntry<'a>> + 'a {
        core::iter::from_fn(move || {
            let fixed = b.get(..DirEntry::FIXED)?;
            let next = u64::from_le_bytes(fixed[0..8].try_into().ok()?);
            let kind = match fixed[8] {
                1 => Kind::File,
                2 => Kind::Dir,
                _ => return None,
            };
            let size = u64::from_le_bytes(fixed[9..17].try_into().ok()?);
            let len = u16::from_le_bytes([fixed[17], fixed[18]]) as usize;
            let name = core::str::from_utf8(b.get(DirEntry::FIXED..DirEntry::FIXED + len)?).ok()?;
            b = &b[DirEntry::FIXED + len..];
            Some(DirEntry { next, kind, size, name })
        })
    }
}

/// A decoded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub op: Op,
    pub handle: u32,
    pub a: u64,
    pub b: u32,
    pub data: &'a [u8],
}

impl<'a> Request<'a> {
    /// Decodes a request and checks its form: the header, flags, and that
    /// data comes only with ops that take it.
    pub fn decode(bytes: &'a [u8]) -> Result<Request<'a>, FsError> {
        let header = bytes.get(..HEADER).ok_or(FsError::BadRequest)?;
        let op = Op::from_u8(header[0]).ok_or(FsError::BadRequest)?;
        let w = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        if header[1..4] != [0, 0, 0] || w(20) != 0 {
            return Err(FsError::BadRequest);
        }
        let req = Request {
            op,
            handle: w(4),
            a: u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")),
            b: w(16),
            data: &bytes[HEADER..],
        };
        if !op.takes_path() && op != Op::Write && !req.data.is_empty() {
            return Err(FsError::BadRequest);
        }
        if op.takes_path() && req.data.len() > if op == Op::Rename { 2 * MAX_PATH } else { MAX_PATH } {
            return Err(FsError::NameTooLong);
        }
        match op {
            Op::Open if req.a & !open::ALL != 0 => Err(FsError::BadRequest),
            Op::Unlink if req.b & !REMOVE_DIR != 0 => Err(FsError::BadRequest),
            Op::Rename if req.b as usize > req.data.len() => Err(FsError::BadRequest),
            _ => Ok(req),
        }
    }

    /// The path in the data (for `RENAME`, the old one).
    pub fn path(&self) -> Result<&'a str, FsError> {
        let bytes = if self.op == Op::Rename { &self.data[..self.b as usize] } else { self.data };
        core::str::from_utf8(bytes).map_err(|_| FsError::BadRequest)
    }

    /// `RENAME`'s new path.
    pub fn new_path(&self) -> Result<&'a str, FsError> {
        core::str::from_utf8(&self.data[self.b as usize..]).map_err(|_| FsError::BadRequest)
    }

    /// Writes the request into `out` (at least `HEADER + data.len()`
    /// bytes) and returns its length.
    pub fn encode(&self, out: &mut [u8]) -> usize {
        out[0] = self.op as u8;
        out[1..4].fill(0);
        out[4..8].copy_from_slice(&self.handle.to_le_bytes());
        out[8..16].copy_from_slice(&self.a.to_le_bytes());
        out[16..20].copy_from_slice(&self.b.to_le_bytes());
        out[20..24].fill(0);
        out[HEADER..HEADER + self.data.len()].copy_from_slice(self.data);
        HEADER + self.data.len()
    }
}

/// Splits a reply into its result and data; `BadRequest` if it is shorter
/// than the result word.
pub fn decode_reply(bytes: &[u8]) -> Result<(Result<u32, FsError>, &[u8]), FsError> {
    let head = bytes.get(..4).ok_or(FsError::BadRequest)?;
    let result = i32::from_le_bytes(head.try_into().expect("4 bytes"));
    let result =
        if result >= 0 { Ok(result as u32) } else { Err(FsError::from_code(result).unwrap_or(FsError::BadRequest)) };
    Ok((result, &bytes[4..]))
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
    fn requests_round_trip() {
        let req = Request { op: Op::Rename, handle: 0, a: 0, b: 3, data: b"oldnew" };
        let bytes = encoded(req);
        let back = Request::decode(&bytes).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.path(), Ok("old"));
        assert_eq!(back.new_path(), Ok("new"));
        let write = Request { op: Op::Write, handle: 5, a: AT_POSITION, b: 0, data: &[1; MAX_WRITE] };
        assert_eq!(encoded(write).len(), MAX_PAYLOAD);
        assert_eq!(Request::decode(&encoded(write)), Ok(write));
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(Request::decode(&[1; 10]), Err(FsError::BadRequest));
        let mut bytes = encoded(Request { op: Op::Close, handle: 1, a: 0, b: 0, data: &[] });
        bytes[0] = 99;
        assert_eq!(Request::decode(&bytes), Err(FsError::BadRequest));
        bytes[0] = Op::Close as u8;
        bytes[21] = 1;
        assert_eq!(Request::decode(&bytes), Err(FsError::BadRequest), "c must be zero");
        let data_on_close = encoded(Request { op: Op::Close, handle: 1, a: 0, b: 0, data: b"x" });
        assert_eq!(Request::decode(&data_on_close), Err(FsError::BadRequest));
        let bad_flags = encoded(Request { op: Op::Open, handle: 0, a: 1 << 40, b: 0, data: b"f" });
        assert_eq!(Request::decode(&bad_flags), Err(FsError::BadRequest));
        let long = [b'a'; MAX_PATH + 1];
        assert_eq!(
            Request::decode(&encoded(Request { op: Op::Open, handle: 0, a: 0, b: 0, data: &long })),
            Err(FsError::NameTooLong)
        );
        let split_past = encoded(Request { op: Op::Rename, handle: 0, a: 0, b: 9, data: b"ab" });
        assert_eq!(Request::decode(&split_past), Err(FsError::BadRequest));
        let not_utf8 = encoded(Request { op: Op::Mkdir, handle: 0, a: 0, b: 0, data: &[0xff, 0xfe] });
        assert_eq!(Request::decode(&not_utf8).unwrap().path(), Err(FsError::BadRequest));
    }

    #[test]
    fn records_round_trip() {
        let stat = Stat { kind: Kind::Dir, size: 4096, modified_ns: 1, created_ns: 2 };
        assert_eq!(Stat::decode(&stat.encode()), Some(stat));
        let fs = Statfs { cluster_size: 512, fat_type: 32, total_clusters: 9, free_clusters: 3 };
        assert_eq!(Statfs::decode(&fs.encode()), Some(fs));
        let mut buf = [0u8; 64];
        let a = DirEntry { next: 1, kind: Kind::File, size: 10, name: "hello.txt" };
        let b = DirEntry { next: 2, kind: Kind::Dir, size: 0, name: "sub" };
        let n = a.encode_into(&mut buf).unwrap();
        let m = b.encode_into(&mut buf[n..]).unwrap();
        let back: alloc::vec::Vec<_> = DirEntry::decode_all(&buf[..n + m]).collect();
        assert_eq!(back, [a, b]);
        assert_eq!(a.encode_into(&mut buf[..5]), None, "a record that does not fit is not written");
    }

    #[test]
    fn every_error_has_a_code_and_an_errno() {
        let mut codes: alloc::vec::Vec<i32> = FsError::ALL.iter().map(|e| e.code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), FsError::ALL.len());
        for e in FsError::ALL {
            assert_eq!(FsError::from_code(e.code()), Some(e));
            assert!(e.errno() != errno::SUCCESS, "{}", e.name());
        }
        assert_eq!(FsError::NoSpace.errno(), 51);
        assert_eq!(FsError::Escapes.errno(), 76);
        assert_eq!(decode_reply(&(-8i32).to_le_bytes()), Ok((Err(FsError::NoSpace), &[][..])));
        for op in Op::ALL {
            assert_eq!(Op::from_u8(op as u8), Some(op));
        }
    }
}
