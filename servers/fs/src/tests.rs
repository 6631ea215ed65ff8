//! The server over a volume in memory: every op, the per-client handle
//! tables, hostile requests, and what a sync (or its absence) leaves on
//! the disk.

use std::cell::RefCell;
use std::rc::Rc;

use wasmos_ipc::block::SECTOR;
use wasmos_ipc::fs::{
    AT_POSITION, DirEntry, FsError, HEADER, Kind, MAX_OPEN, MAX_READ, Op, REMOVE_DIR, ROOT, Request, Stat, Statfs,
    decode_reply, open,
};

use crate::cache::Blocks;
use crate::server::Server;

/// A disk whose bytes outlive the server (a reboot is a new server).
#[derive(Clone)]
struct Shared(Rc<RefCell<Vec<u8>>>);

impl Blocks for Shared {
    fn sectors(&self) -> u64 {
        (self.0.borrow().len() / SECTOR) as u64
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
        let at = lba as usize * SECTOR;
        buf.copy_from_slice(&self.0.borrow()[at..at + buf.len()]);
        Ok(())
    }
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), FsError> {
        let at = lba as usize * SECTOR;
        self.0.borrow_mut()[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), FsError> {
        Ok(())
    }
}

/// A formatted disk of `mib` MiB (FAT32 from 33 MiB up, else FAT16/12).
fn disk(mib: usize) -> Shared {
    let mut bytes = std::io::Cursor::new(vec![0u8; mib << 20]);
    let fat = if mib >= 33 { fatfs::FatType::Fat32 } else { fatfs::FatType::Fat12 };
    let opts = fatfs::FormatVolumeOptions::new().fat_type(fat);
    let opts = if mib >= 33 { opts.bytes_per_cluster(512) } else { opts };
    fatfs::format_volume(&mut bytes, opts).unwrap();
    Shared(Rc::new(RefCell::new(bytes.into_inner())))
}

struct Client<'a> {
    server: &'a mut Server<Shared>,
    id: u64,
}

impl Client<'_> {
    fn call(&mut self, op: Op, handle: u32, a: u64, b: u32, data: &[u8]) -> (Result<u32, FsError>, Vec<u8>) {
        let mut msg = vec![0u8; HEADER + data.len()];
        let n = Request { op, handle, a, b, data }.encode(&mut msg);
        let reply = self.server.handle(self.id, &msg[..n]);
        let (r, d) = decode_reply(&reply).unwrap();
        (r, d.to_vec())
    }
    fn open(&mut self, path: &str, flags: u64) -> Result<u32, FsError> {
        self.call(Op::Open, ROOT, flags, 0, path.as_bytes()).0
    }
    fn write(&mut self, h: u32, data: &[u8]) -> Result<u32, FsError> {
        self.call(Op::Write, h, AT_POSITION, 0, data).0
    }
    fn read(&mut self, h: u32, at: u64, max: u32) -> Result<Vec<u8>, FsError> {
        let (r, d) = self.call(Op::Read, h, at, max, &[]);
        r.map(|_| d)
    }
    fn stat(&mut self, path: &str) -> Result<Stat, FsError> {
        let (r, d) = self.call(Op::Stat, ROOT, 0, 0, path.as_bytes());
        r.map(|_| Stat::decode(&d).unwrap())
    }
    fn simple(&mut self, op: Op, b: u32, path: &str) -> Result<u32, FsError> {
        self.call(op, ROOT, 0, b, path.as_bytes()).0
    }
    fn rename(&mut self, from: &str, to: &str) -> Result<u32, FsError> {
        self.call(Op::Rename, ROOT, 0, from.len() as u32, format!("{from}{to}").as_bytes()).0
    }
    fn names(&mut self, h: u32) -> Vec<String> {
        let (r, d) = self.call(Op::Readdir, h, 0, 0, &[]);
        r.unwrap();
        DirEntry::decode_all(&d).map(|e| e.name.to_owned()).collect()
    }
}

const RW: u64 = open::READ | open::WRITE;

fn server(d: &Shared) -> Server<Shared> {
    let (s, mounted) = Server::new(d.clone());
    mounted.unwrap();
    s
}

#[test]
fn write_read_rename_delete_round_trips() {
    let d = disk(40);
    let mut s = server(&d);
    assert_eq!(s.fat_type(), Some(fatfs::FatType::Fat32));
    let mut c = Client { server: &mut s, id: 7 };
    let h = c.open("notes.txt", RW | open::CREATE).unwrap();
    let text: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    for chunk in text.chunks(4000) {
        assert_eq!(c.write(h, chunk), Ok(chunk.len() as u32));
    }
    let mut back = Vec::new();
    while back.len() < text.len() {
        back.extend(c.read(h, back.len() as u64, MAX_READ as u32).unwrap());
    }
    assert_eq!(back, text);
    assert_eq!(c.stat("notes.txt").unwrap().size, 10_000);
    // Seek and position-relative reads.
    let (r, pos) = c.call(Op::Seek, h, (-10i64) as u64, 2, &[]);
    assert_eq!((r, u64::from_le_bytes(pos.try_into().unwrap())), (Ok(0), 9_990));
    assert_eq!(c.read(h, AT_POSITION, 100).unwrap(), &text[9_990..]);
    assert_eq!(c.read(h, AT_POSITION, 100).unwrap(), b"", "end of file");
    // Directories, rename (also onto an existing file), truncate.
    assert_eq!(c.simple(Op::Mkdir, 0, "docs"), Ok(0));
    assert_eq!(c.simple(Op::Mkdir, 0, "docs"), Err(FsError::Exists));
    assert_eq!(c.rename("notes.txt", "docs/Long Name Notes.txt"), Ok(0));
    assert_eq!(c.stat("notes.txt"), Err(FsError::NotFound));
    assert_eq!(c.read(h, 0, 4).unwrap(), &text[..4], "the open handle moved with the file");
    let other = c.open("docs/other", RW | open::CREATE).unwrap();
    c.write(other, b"x").unwrap();
    assert_eq!(c.rename("docs/other", "docs/long name notes.txt"), Ok(0), "replaces, case-insensitively");
    assert_eq!(c.stat("docs/Long Name Notes.txt").unwrap().size, 1);
    assert_eq!(c.call(Op::Truncate, other, 5000, 0, &[]).0, Ok(0));
    assert_eq!(c.read(other, 0, 10).unwrap(), b"x\0\0\0\0\0\0\0\0\0");
    let dir = c.open("docs", open::READ | open::DIRECTORY).unwrap();
    assert_eq!(c.names(dir), ["long name notes.txt"], "the target replaced, under the new spelling");
    assert_eq!(c.simple(Op::Unlink, REMOVE_DIR, "docs"), Err(FsError::NotEmpty));
    assert_eq!(c.simple(Op::Unlink, 0, "docs"), Err(FsError::IsDir));
    assert_eq!(c.simple(Op::Unlink, REMOVE_DIR, "docs/long name notes.txt"), Err(FsError::NotDir));
    assert_eq!(c.simple(Op::Unlink, 0, "docs/Long Name Notes.txt"), Ok(0));
    assert_eq!(c.simple(Op::Unlink, REMOVE_DIR, "docs"), Ok(0));
    assert_eq!(c.names(ROOT), Vec::<String>::new());
    // Append, exclusive create, truncate-on-open.
    let a = c.open("log", open::WRITE | open::APPEND | open::CREATE | open::EXCLUSIVE).unwrap();
    assert_eq!(c.open("log", RW | open::CREATE | open::EXCLUSIVE), Err(FsError::Exists));
    c.call(Op::Write, a, 0, 0, b"one ").0.unwrap();
    c.call(Op::Write, a, 0, 0, b"two").0.unwrap();
    let r = c.open("log", open::READ).unwrap();
    assert_eq!(c.read(r, 0, 100).unwrap(), b"one two");
    c.open("log", open::WRITE | open::TRUNCATE).unwrap();
    assert_eq!(c.stat("log").unwrap().size, 0);
}

#[test]
fn hostile_requests_get_their_codes() {
    let d = disk(4);
    let mut s = server(&d);
    let mut a = Client { server: &mut s, id: 1 };
    let h = a.open("secret", RW | open::CREATE).unwrap();
    a.write(h, b"mine").unwrap();
    let ro = a.open("secret", open::READ).unwrap();
    assert_eq!(a.write(ro, b"x"), Err(FsError::NotPermitted));
    assert_eq!(a.read(h, 0, u32::MAX).unwrap(), b"mine", "a huge length is clamped");
    assert_eq!(a.open("../etc", open::READ), Err(FsError::Escapes));
    assert_eq!(a.open("a/../../x", open::READ), Err(FsError::Escapes));
    assert_eq!(a.open("bad:name", RW | open::CREATE), Err(FsError::InvalidName));
    assert_eq!(a.open(&"n".repeat(256), RW | open::CREATE), Err(FsError::NameTooLong));
    assert_eq!(a.read(0xdead_beef, 0, 10), Err(FsError::BadHandle));
    assert_eq!(a.call(Op::Close, h + 100, 0, 0, &[]).0, Err(FsError::BadHandle));
    // Another client, with the first one's handle numbers.
    let mut b = Client { server: a.server, id: 2 };
    assert_eq!(b.read(h, 0, 10), Err(FsError::BadHandle));
    assert_eq!(b.write(h, b"stolen"), Err(FsError::BadHandle));
    assert_eq!(b.call(Op::Close, h, 0, 0, &[]).0, Err(FsError::BadHandle));
    // A sub-directory handle bounds `..` too.
    b.simple(Op::Mkdir, 0, "jail").unwrap();
    let jail = b.open("jail", open::READ | open::DIRECTORY).unwrap();
    assert_eq!(b.call(Op::Open, jail, open::READ, 0, b"../secret").0, Err(FsError::Escapes));
    assert_eq!(b.call(Op::Open, jail, open::READ, 0, b"/secret").0, Err(FsError::Escapes));
    // Per-client handle limit; the handles are released on close.
    let mut held = vec![jail];
    while held.len() < MAX_OPEN {
        held.push(b.open("secret", open::READ).unwrap());
    }
    assert_eq!(b.open("secret", open::READ), Err(FsError::TooManyOpen));
    let mut a = Client { server: b.server, id: 1 };
    assert!(a.open("secret", open::READ).is_ok(), "one client's limit is not another's");
    let mut b = Client { server: a.server, id: 2 };
    for h in held {
        b.call(Op::Close, h, 0, 0, &[]).0.unwrap();
    }
    assert!(b.open("secret", open::READ).is_ok());
    // Malformed bytes.
    assert_eq!(decode_reply(&b.server.handle(2, &[1, 2, 3])).unwrap().0, Err(FsError::BadRequest));
    let mut a = Client { server: b.server, id: 1 };
    assert_eq!(a.read(h, 0, 10).unwrap(), b"mine", "the owner's handle still works");
}

#[test]
fn synced_data_survives_a_reboot_and_unsynced_changes_vanish_cleanly() {
    let d = disk(40);
    let mut s = server(&d);
    let mut c = Client { server: &mut s, id: 3 };
    let h = c.open("kept.txt", RW | open::CREATE).unwrap();
    c.write(h, b"synced").unwrap();
    assert_eq!(c.call(Op::Sync, ROOT, 0, 0, &[]).0, Ok(0));
    let image_after_sync = d.0.borrow().clone();
    c.write(h, b" and lost").unwrap();
    c.simple(Op::Mkdir, 0, "lost-dir").unwrap();
    assert_eq!(*d.0.borrow(), image_after_sync, "nothing reaches the disk between syncs");
    drop(s); // a crash: no sync, no unmount
    let mut s = server(&d);
    let mut c = Client { server: &mut s, id: 3 };
    assert_eq!(c.stat("kept.txt").unwrap().size, 6);
    assert_eq!(c.stat("lost-dir"), Err(FsError::NotFound));
    // Linux reads it too: fatfs as an independent reader of the image.
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(d.0.borrow().clone()), fatfs::FsOptions::new()).unwrap();
    assert!(!fs.read_status_flags().unwrap().dirty(), "a completed sync leaves the volume clean");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut fs.root_dir().open_file("kept.txt").unwrap(), &mut text).unwrap();
    assert_eq!(text, "synced");
}

#[test]
fn a_full_disk_says_no_space_and_stays_usable() {
    let d = disk(2);
    let mut s = server(&d);
    let mut c = Client { server: &mut s, id: 4 };
    let (r, raw) = c.call(Op::Statfs, ROOT, 0, 0, &[]);
    r.unwrap();
    let before = Statfs::decode(&raw).unwrap();
    let h = c.open("big", RW | open::CREATE).unwrap();
    let chunk = vec![0x5a; 4000];
    let mut written = 0u64;
    let err = loop {
        match c.write(h, &chunk) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
        assert!(written < 4 << 20, "a 2 MiB disk never filled");
    };
    assert_eq!(err, FsError::NoSpace);
    assert!(written > 1 << 20);
    assert_eq!(c.simple(Op::Unlink, 0, "big"), Ok(0));
    assert_eq!(c.call(Op::Sync, ROOT, 0, 0, &[]).0, Ok(0));
    let (_, raw) = c.call(Op::Statfs, ROOT, 0, 0, &[]);
    assert_eq!(Statfs::decode(&raw).unwrap().free_clusters, before.free_clusters, "every cluster came back");
    assert_eq!(Stat::decode(&c.call(Op::Stat, ROOT, 0, 0, &[]).1).unwrap().kind, Kind::Dir);
}

#[test]
fn a_disk_without_a_volume_answers_no_disk() {
    let blank = Shared(Rc::new(RefCell::new(vec![0u8; 1 << 20])));
    let (mut s, mounted) = Server::new(blank);
    assert!(mounted.is_err());
    let mut c = Client { server: &mut s, id: 5 };
    assert_eq!(c.open("x", RW | open::CREATE), Err(FsError::NoDisk));
}
