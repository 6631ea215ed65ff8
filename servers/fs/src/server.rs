//! The file protocol ([`wasmos_ipc::fs`]) over a fatfs volume: per-client
//! handle tables, path resolution, each op, and syncs.
//!
//! No fatfs `File` or `Dir` outlives a request (they borrow the volume):
//! a handle records the path it was opened with, its kind, its position
//! and its open flags, and every request looks the path up again. That
//! keeps the volume free to be unmounted and remounted at a sync, and
//! means a handle names a path: a file renamed through the server keeps
//! its open handles (they are moved along), one removed makes them
//! [`FsError::NotFound`].

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use fatfs::{FileSystem, FsOptions};
use wasmos_ipc::fs::{
    AT_POSITION, DirEntry as WireEntry, FsError, Kind, MAX_CLIENTS, MAX_FILE_SIZE, MAX_HANDLES, MAX_NAME, MAX_OPEN,
    MAX_READ, Op, REMOVE_DIR, ROOT, Request, Stat, Statfs, open,
};

use crate::cache::{Blocks, Cache, MAX_DIRTY};
use crate::disk::{DEVICE_ERROR, Disk};

type Volume<B> = FileSystem<Disk<B>>;
type FsResult<T> = Result<T, FsError>;

/// An open file or directory.
#[derive(Debug, Clone)]
struct Open {
    kind: Kind,
    /// Components from the root.
    path: Vec<String>,
    pos: u64,
    flags: u64,
}

#[derive(Default)]
struct Client {
    /// Slot `i` is handle `(generation << 8) | (i + 1)`.
    slots: Vec<(u32, Option<Open>)>,
    open: usize,
}

impl Client {
    fn get(&mut self, handle: u32) -> FsResult<&mut Open> {
        let index = ((handle & 0xff) as usize).checked_sub(1).ok_or(FsError::BadHandle)?;
        match self.slots.get_mut(index) {
            Some((generation, Some(open))) if *generation == handle >> 8 => Ok(open),
            _ => Err(FsError::BadHandle),
        }
    }
}

/// A test-only fault (see [`Server::crash_on_write_to`]).
pub struct CrashPlan {
    pub name: String,
}

/// The file server's state.
pub struct Server<B: Blocks> {
    cache: Rc<RefCell<Cache<B>>>,
    volume: Option<Volume<B>>,
    clients: BTreeMap<u64, Client>,
    handles: usize,
    crash: Option<CrashPlan>,
    /// Changes since the last sync.
    unsynced: bool,
}

/// What a path resolves to.
struct Found {
    kind: Kind,
    size: u64,
    modified_ns: u64,
    created_ns: u64,
}

fn join(path: &[String]) -> String {
    path.join("/")
}

/// Nanoseconds since 1970 of a FAT date and time (no time zone).
fn to_ns(d: fatfs::DateTime) -> u64 {
    let (y, m, day) = (d.date.year as i64, d.date.month as i64, d.date.day as i64);
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + d.time.hour as i64 * 3600 + d.time.min as i64 * 60 + d.time.sec as i64;
    (secs.max(0) as u64) * 1_000_000_000 + d.time.millis as u64 * 1_000_000
}

/// The protocol error for what fatfs (or the disk below it) reported.
fn error(e: std::io::Error) -> FsError {
    let text = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => FsError::NotFound,
        ErrorKind::AlreadyExists => FsError::Exists,
        ErrorKind::UnexpectedEof | ErrorKind::WriteZero => FsError::Corrupt,
        ErrorKind::InvalidInput => FsError::InvalidName,
        _ if text.contains(DEVICE_ERROR) => FsError::Io,
        _ if text.contains("No space left") => FsError::NoSpace,
        _ if text.contains("not empty") => FsError::NotEmpty,
        _ if text.contains("Is a directory") => FsError::IsDir,
        _ if text.contains("Not a directory") => FsError::NotDir,
        _ if text.contains("too long") => FsError::NameTooLong,
        _ if text.contains("File name") => FsError::InvalidName,
        _ => FsError::Corrupt,
    }
}

/// Resolves `path` against `base` (components from the root): `.` and
/// empty names are skipped, `..` may not climb above `base`.
fn resolve(base: &[String], path: &str, from_root: bool) -> FsResult<Vec<String>> {
    let rest = match path.strip_prefix('/') {
        Some(_) if !from_root => return Err(FsError::Escapes),
        Some(rest) => rest,
        None => path,
    };
    let mut out = base.to_vec();
    for name in rest.split('/') {
        match name {
            "" | "." => {}
            ".." => {
                if out.len() <= base.len() {
                    return Err(FsError::Escapes);
                }
                out.pop();
            }
            _ => {
                if name.len() > MAX_NAME {
                    return Err(FsError::NameTooLong);
                }
                if name.chars().any(|c| c < ' ' || "\\:*?\"<>|".contains(c)) {
                    return Err(FsError::InvalidName);
                }
                out.push(name.to_owned());
            }
        }
    }
    Ok(out)
}

impl<B: Blocks> Server<B> {
    /// Mounts the volume on `dev`; a disk without a FAT volume leaves the
    /// server answering [`FsError::NoDisk`] (the reason is returned too).
    pub fn new(dev: B) -> (Server<B>, Result<(), String>) {
        let cache = Rc::new(RefCell::new(Cache::new(dev)));
        let mounted = FileSystem::new(Disk::new(cache.clone()), FsOptions::new());
        let (volume, status) = match mounted {
            Ok(v) => (Some(v), Ok(())),
            Err(e) => (None, Err(e.to_string())),
        };
        let server = Server { cache, volume, clients: BTreeMap::new(), handles: 0, crash: None, unsynced: false };
        (server, status)
    }

    /// Test-only fault: the first `WRITE` to a file named `name` traps
    /// half-way (after half its bytes went into the cache), as a server
    /// killed mid-write would stop. Armed only by the server's starter.
    pub fn crash_on_write_to(&mut self, name: &str) {
        self.crash = Some(CrashPlan { name: name.to_owned() });
    }

    /// Whether there are changes a sync would write.
    pub fn unsynced(&self) -> bool {
        self.unsynced
    }

    /// Whether so many pages are dirty that the server should sync now.
    pub fn cache_full(&self) -> bool {
        self.cache.borrow().dirty_pages() >= MAX_DIRTY
    }

    pub fn fat_type(&self) -> Option<fatfs::FatType> {
        self.volume.as_ref().map(|v| v.fat_type())
    }

    /// Serves one request from task `client`; returns the reply payload.
    pub fn handle(&mut self, client: u64, bytes: &[u8]) -> Vec<u8> {
        let mut data = Vec::new();
        let result = Request::decode(bytes).and_then(|req| self.serve(client, &req, &mut data));
        let word = match result {
            Ok(v) => v as i32,
            Err(e) => {
                data.clear();
                e.code()
            }
        };
        let mut out = Vec::with_capacity(4 + data.len());
        out.extend_from_slice(&word.to_le_bytes());
        out.extend_from_slice(&data);
        if self.cache_full() {
            // Bounded cache: write back now (the request itself succeeded).
            let _ = self.sync();
        }
        out
    }

    fn volume(&self) -> FsResult<&Volume<B>> {
        self.volume.as_ref().ok_or(FsError::NoDisk)
    }

    /// The open handle `handle` of `client` (a copy), or the root.
    fn open_of(&mut self, client: u64, handle: u32) -> FsResult<Open> {
        if handle == ROOT {
            return Ok(Open { kind: Kind::Dir, path: Vec::new(), pos: 0, flags: open::READ });
        }
        self.clients.get_mut(&client).ok_or(FsError::BadHandle)?.get(handle).cloned()
    }

    fn set_pos(&mut self, client: u64, handle: u32, pos: u64) {
        if let Some(open) = self.clients.get_mut(&client).and_then(|c| c.get(handle).ok()) {
            open.pos = pos;
        }
    }

    /// The directory a path is resolved in: `handle` must be one.
    fn base(&mut self, client: u64, handle: u32) -> FsResult<Vec<String>> {
        let open = self.open_of(client, handle)?;
        if open.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        Ok(open.path)
    }

    fn resolve(&mut self, client: u64, req: &Request<'_>, path: &str) -> FsResult<Vec<String>> {
        let base = self.base(client, req.handle)?;
        resolve(&base, path, req.handle == ROOT)
    }

    /// Looks `path` up: `None` if its last name does not exist (its
    /// parent must).
    fn lookup(&self, path: &[String]) -> FsResult<Option<Found>> {
        let volume = self.volume()?;
        let Some((name, parent)) = path.split_last() else {
            return Ok(Some(Found { kind: Kind::Dir, size: 0, modified_ns: 0, created_ns: 0 }));
        };
        let dir = if parent.is_empty() {
            volume.root_dir()
        } else {
            volume.root_dir().open_dir(&join(parent)).map_err(error)?
        };
        for entry in dir.iter() {
            let entry = entry.map_err(error)?;
            let long = entry.file_name();
            if long.eq_ignore_ascii_case(name) || long.to_lowercase() == name.to_lowercase() {
                let kind = if entry.is_dir() { Kind::Dir } else { Kind::File };
                let size = if entry.is_dir() { 0 } else { entry.len() };
                return Ok(Some(Found {
                    kind,
                    size,
                    modified_ns: to_ns(entry.modified()),
                    created_ns: to_ns(entry.created()),
                }));
            }
        }
        Ok(None)
    }

    fn stat(&self, path: &[String]) -> FsResult<Stat> {
        let f = self.lookup(path)?.ok_or(FsError::NotFound)?;
        Ok(Stat { kind: f.kind, size: f.size, modified_ns: f.modified_ns, created_ns: f.created_ns })
    }

    fn file(&self, path: &[String]) -> FsResult<fatfs::File<'_, Disk<B>>> {
        self.volume()?.root_dir().open_file(&join(path)).map_err(error)
    }

    fn add_handle(&mut self, client: u64, open: Open) -> FsResult<u32> {
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_CLIENTS {
            return Err(FsError::NoResources);
        }
        let c = self.clients.entry(client).or_default();
        if c.open >= MAX_OPEN {
            return Err(FsError::TooManyOpen);
        }
        if self.handles >= MAX_HANDLES {
            return Err(FsError::NoResources);
        }
        let index = match c.slots.iter().position(|(_, o)| o.is_none()) {
            Some(i) => i,
            None => {
                c.slots.push((0, None));
                c.slots.len() - 1
            }
        };
        let slot = &mut c.slots[index];
        slot.0 = (slot.0 + 1) & 0x7f_ffff;
        slot.1 = Some(open);
        c.open += 1;
        self.handles += 1;
        Ok((slot.0 << 8) | (index as u32 + 1))
    }

    fn close(&mut self, client: u64, handle: u32) -> FsResult<u32> {
        let c = self.clients.get_mut(&client).ok_or(FsError::BadHandle)?;
        c.get(handle)?;
        c.slots[(handle & 0xff) as usize - 1].1 = None;
        c.open -= 1;
        self.handles -= 1;
        if c.open == 0 {
            // A client holds state only while it has something open.
            self.clients.remove(&client);
        }
        Ok(0)
    }

    fn changed(&mut self) {
        self.unsynced = true;
    }

    fn serve(&mut self, client: u64, req: &Request<'_>, data: &mut Vec<u8>) -> FsResult<u32> {
        match req.op {
            Op::Open => self.open(client, req, data),
            Op::Close => self.close(client, req.handle),
            Op::Read => self.read(client, req, data),
            Op::Write => self.write(client, req),
            Op::Seek => self.seek(client, req, data),
            Op::Stat => {
                let open = self.open_of(client, req.handle)?;
                let path = if req.data.is_empty() { open.path } else { self.resolve(client, req, req.path()?)? };
                data.extend_from_slice(&self.stat(&path)?.encode());
                Ok(0)
            }
            Op::Readdir => self.readdir(client, req, data),
            Op::Mkdir => {
                let path = self.resolve(client, req, req.path()?)?;
                self.volume()?;
                if path.is_empty() || self.lookup(&path)?.is_some() {
                    return Err(FsError::Exists);
                }
                self.volume()?.root_dir().create_dir(&join(&path)).map_err(error)?;
                self.changed();
                Ok(0)
            }
            Op::Unlink => self.unlink(client, req),
            Op::Rename => self.rename(client, req),
            Op::Truncate => self.truncate(client, req),
            Op::Sync => {
                self.open_of(client, req.handle)?;
                self.sync().map(|()| 0)
            }
            Op::Statfs => {
                let stats = self.volume()?.stats().map_err(error)?;
                let fat_type = match self.volume()?.fat_type() {
                    fatfs::FatType::Fat12 => 12,
                    fatfs::FatType::Fat16 => 16,
                    fatfs::FatType::Fat32 => 32,
                };
                let s = Statfs {
                    cluster_size: stats.cluster_size(),
                    fat_type,
                    total_clusters: stats.total_clusters() as u64,
                    free_clusters: stats.free_clusters() as u64,
                };
                data.extend_from_slice(&s.encode());
                Ok(0)
            }
        }
    }

    fn open(&mut self, client: u64, req: &Request<'_>, data: &mut Vec<u8>) -> FsResult<u32> {
        let flags = req.a;
        let path = self.resolve(client, req, req.path()?)?;
        let writes = flags & (open::WRITE | open::TRUNCATE | open::APPEND) != 0;
        if flags & open::TRUNCATE != 0 && flags & open::WRITE == 0 {
            return Err(FsError::BadRequest);
        }
        let found = match self.lookup(&path)? {
            Some(_) if flags & open::CREATE != 0 && flags & open::EXCLUSIVE != 0 => return Err(FsError::Exists),
            Some(f) => f,
            None if flags & open::CREATE == 0 => return Err(FsError::NotFound),
            None if flags & open::DIRECTORY != 0 => return Err(FsError::NotFound),
            None => {
                if flags & open::WRITE == 0 {
                    return Err(FsError::BadRequest);
                }
                self.volume()?.root_dir().create_file(&join(&path)).map_err(error)?;
                self.changed();
                self.lookup(&path)?.ok_or(FsError::Corrupt)?
            }
        };
        match found.kind {
            Kind::Dir if writes => return Err(FsError::IsDir),
            Kind::File if flags & open::DIRECTORY != 0 => return Err(FsError::NotDir),
            _ => {}
        }
        let handle = self.add_handle(client, Open { kind: found.kind, path: path.clone(), pos: 0, flags })?;
        if flags & open::TRUNCATE != 0 && found.size > 0 {
            let mut file = self.file(&path)?;
            file.truncate().map_err(error)?;
            drop(file);
            self.changed();
        }
        data.extend_from_slice(&self.stat(&path)?.encode());
        Ok(handle)
    }

    fn file_handle(&mut self, client: u64, handle: u32, need: u64) -> FsResult<Open> {
        let open = self.open_of(client, handle)?;
        if open.kind != Kind::File {
            return Err(FsError::IsDir);
        }
        if open.flags & need == 0 {
            return Err(FsError::NotPermitted);
        }
        Ok(open)
    }

    fn read(&mut self, client: u64, req: &Request<'_>, data: &mut Vec<u8>) -> FsResult<u32> {
        let open = self.file_handle(client, req.handle, open::READ)?;
        let at = if req.a == AT_POSITION { open.pos } else { req.a };
        let max = (req.b as usize).min(MAX_READ);
        let mut file = self.file(&open.path)?;
        file.seek(SeekFrom::Start(at)).map_err(error)?;
        data.resize(max, 0);
        let mut n = 0;
        while n < max {
            match file.read(&mut data[n..]).map_err(error)? {
                0 => break,
                k => n += k,
            }
        }
        data.truncate(n);
        drop(file);
        if req.a == AT_POSITION {
            self.set_pos(client, req.handle, at + n as u64);
        }
        Ok(n as u32)
    }

    fn write(&mut self, client: u64, req: &Request<'_>) -> FsResult<u32> {
        let open = self.file_handle(client, req.handle, open::WRITE | open::APPEND)?;
        let size = self.stat(&open.path)?.size;
        let at = if open.flags & open::APPEND != 0 {
            size
        } else if req.a == AT_POSITION {
            open.pos
        } else {
            req.a
        };
        let end = at.checked_add(req.data.len() as u64).ok_or(FsError::TooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::TooBig);
        }
        let crash_now = self.crash.as_ref().is_some_and(|c| open.path.last() == Some(&c.name));
        self.unsynced = true;
        let mut file = self.file(&open.path)?;
        if at > size {
            file.seek(SeekFrom::End(0)).map_err(error)?;
            fill_zeros(&mut file, at - size)?;
        } else {
            file.seek(SeekFrom::Start(at)).map_err(error)?;
        }
        if crash_now {
            // The test-only fault: stop half-way through the write.
            let half = req.data.len() / 2;
            file.write_all(&req.data[..half]).map_err(error)?;
            crate::trap();
        }
        file.write_all(req.data).map_err(error)?;
        drop(file);
        if req.a == AT_POSITION || open.flags & open::APPEND != 0 {
            self.set_pos(client, req.handle, end);
        }
        Ok(req.data.len() as u32)
    }

    fn seek(&mut self, client: u64, req: &Request<'_>, data: &mut Vec<u8>) -> FsResult<u32> {
        let open = self.open_of(client, req.handle)?;
        if req.handle == ROOT {
            return Err(FsError::BadHandle);
        }
        let base = match req.b {
            0 => 0i128,
            1 => open.pos as i128,
            2 => self.stat(&open.path)?.size as i128,
            _ => return Err(FsError::InvalidName),
        };
        let to = base + req.a as i64 as i128;
        if !(0..=MAX_FILE_SIZE as i128).contains(&to) {
            return Err(FsError::InvalidName);
        }
        self.set_pos(client, req.handle, to as u64);
        data.extend_from_slice(&(to as u64).to_le_bytes());
        Ok(0)
    }

    fn readdir(&mut self, client: u64, req: &Request<'_>, data: &mut Vec<u8>) -> FsResult<u32> {
        let open = self.open_of(client, req.handle)?;
        if open.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        let volume = self.volume()?;
        let dir = if open.path.is_empty() {
            volume.root_dir()
        } else {
            volume.root_dir().open_dir(&join(&open.path)).map_err(error)?
        };
        let mut out = vec![0u8; MAX_READ];
        let (mut used, mut count) = (0, 0u32);
        let mut index = 0u64;
        for entry in dir.iter() {
            let entry = entry.map_err(error)?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            index += 1;
            if index <= req.a {
                continue;
            }
            let kind = if entry.is_dir() { Kind::Dir } else { Kind::File };
            let size = if entry.is_dir() { 0 } else { entry.len() };
            match (WireEntry { next: index, kind, size, name: &name }).encode_into(&mut out[used..]) {
                Some(n) => {
                    used += n;
                    count += 1;
                }
                None => break,
            }
        }
        out.truncate(used);
        *data = out;
        Ok(count)
    }

    fn unlink(&mut self, client: u64, req: &Request<'_>) -> FsResult<u32> {
        let path = self.resolve(client, req, req.path()?)?;
        if path.is_empty() {
            return Err(FsError::Escapes);
        }
        let found = self.lookup(&path)?.ok_or(FsError::NotFound)?;
        match (found.kind, req.b & REMOVE_DIR != 0) {
            (Kind::Dir, false) => return Err(FsError::IsDir),
            (Kind::File, true) => return Err(FsError::NotDir),
            _ => {}
        }
        self.volume()?.root_dir().remove(&join(&path)).map_err(error)?;
        self.changed();
        Ok(0)
    }

    fn rename(&mut self, client: u64, req: &Request<'_>) -> FsResult<u32> {
        let from = self.resolve(client, req, req.path()?)?;
        let to = self.resolve(client, req, req.new_path()?)?;
        if from.is_empty() || to.is_empty() {
            return Err(FsError::Escapes);
        }
        let src = self.lookup(&from)?.ok_or(FsError::NotFound)?;
        if src.kind == Kind::Dir && to.len() > from.len() && to[..from.len()] == from[..] {
            return Err(FsError::InvalidName); // into itself
        }
        if src.kind == Kind::Dir && from[..from.len() - 1] != to[..to.len() - 1] {
            // fatfs moves the entry but not the directory's `..`, which
            // would then point at the old parent: refuse, do not corrupt.
            return Err(FsError::Unsupported);
        }
        let same = from.len() == to.len() && join(&from).eq_ignore_ascii_case(&join(&to));
        if let Some(dst) = self.lookup(&to)?.filter(|_| !same) {
            match (src.kind, dst.kind) {
                (Kind::File, Kind::Dir) => return Err(FsError::IsDir),
                (Kind::Dir, Kind::File) => return Err(FsError::NotDir),
                _ => {}
            }
            // POSIX rename replaces the target (an empty directory for a
            // directory); nothing reaches the disk before the next sync,
            // so a crash cannot leave the target gone and the source not
            // yet renamed.
            self.volume()?.root_dir().remove(&join(&to)).map_err(error)?;
        }
        {
            let root = self.volume()?.root_dir();
            root.rename(&join(&from), &root, &join(&to)).map_err(error)?;
        }
        self.changed();
        // Open handles move with what they named.
        for c in self.clients.values_mut() {
            for open in c.slots.iter_mut().filter_map(|(_, o)| o.as_mut()) {
                if open.path.len() >= from.len() && open.path[..from.len()] == from[..] {
                    open.path.splice(..from.len(), to.iter().cloned());
                }
            }
        }
        Ok(0)
    }

    fn truncate(&mut self, client: u64, req: &Request<'_>) -> FsResult<u32> {
        let open = self.file_handle(client, req.handle, open::WRITE)?;
        if req.a > MAX_FILE_SIZE {
            return Err(FsError::TooBig);
        }
        let size = self.stat(&open.path)?.size;
        let mut file = self.file(&open.path)?;
        if req.a < size {
            file.seek(SeekFrom::Start(req.a)).map_err(error)?;
            file.truncate().map_err(error)?;
        } else if req.a > size {
            file.seek(SeekFrom::End(0)).map_err(error)?;
            fill_zeros(&mut file, req.a - size)?;
        }
        drop(file);
        self.changed();
        Ok(0)
    }

    /// Writes every change to the disk, crash-ordered (see the protocol's
    /// durability section): the dirty flag on disk first, then every
    /// changed page, then the clean flag and FSInfo; a block `FLUSH` after
    /// each step.
    pub fn sync(&mut self) -> FsResult<()> {
        let Some(volume) = self.volume.take() else { return Err(FsError::NoDisk) };
        if !self.unsynced && self.cache.borrow().dirty_pages() == 0 {
            self.volume = Some(volume);
            return self.cache.borrow_mut().device().flush();
        }
        let fat32 = volume.fat_type() == fatfs::FatType::Fat32;
        let result = (|| {
            // 1. Mark the volume dirty on disk (boot sector byte 0x41 on
            //    FAT32, 0x25 otherwise), so a crash in step 2 is noticed.
            let mut boot = [0u8; 512];
            self.cache.borrow_mut().read_at(0, &mut boot)?;
            boot[if fat32 { 0x41 } else { 0x25 }] |= 1;
            self.cache.borrow_mut().write_through(0, &boot)?;
            // 2. Unmount (FSInfo and the clean flag go into the cache), and
            //    write every page but the first.
            volume.unmount().map_err(error)?;
            self.cache.borrow_mut().write_back_except(&[0])?;
            // 3. The first page: FSInfo, and the boot sector as the cache
            //    has it (clean, unless the volume was dirty when mounted).
            let mut cache = self.cache.borrow_mut();
            cache.write_back()?;
            cache.read_at(0, &mut boot)?;
            cache.write_through(0, &boot)
        })();
        let remounted = FileSystem::new(Disk::new(self.cache.clone()), FsOptions::new()).map_err(error);
        self.volume = remounted.ok();
        self.unsynced = false;
        result?;
        if self.volume.is_none() {
            return Err(FsError::Corrupt);
        }
        Ok(())
    }
}

/// Appends `n` zero bytes at the file's position.
fn fill_zeros<T: fatfs::ReadWriteSeek>(file: &mut fatfs::File<'_, T>, mut n: u64) -> FsResult<()> {
    let zeros = [0u8; 4096];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..k]).map_err(error)?;
        n -= k as u64;
    }
    Ok(())
}
