//! fs_check: the test client of the storage suites (QEMU and hosted).
//! Its first argument picks a phase; it prints `fs_check: <phase> ok` and
//! exits 0, or prints what failed and exits with the failed step's number.
//!
//! | phase | what it checks |
//! |---|---|
//! | `block` | the block protocol on the raw disk (handle 1): geometry, a sector round trip, every refusal |
//! | `first` | `host.txt` from the host; round trips; hostile requests; a full disk; `guest.txt` for the host |
//! | `owner` / `thief` | one client's handle is useless to another (two tasks) |
//! | `crash` | a write the server dies in the middle of (`--crash-on-write-to partial.bin`) |
//! | `after-crash`, `second` | what the last sync left is all there (after the server's death; after a reboot) |

#![no_std]

use wasmos_sdk::fs::{self, AT_POSITION, DirEntry, Error, Fs, FsError, Kind, Op, open};
use wasmos_sdk::{self as os, Handle, Status, println};

/// What the host put on the disk before the first boot.
pub const HOST_TEXT: &[u8] = b"written on the host\n";
/// What the guest writes for the host and the second boot.
pub const GUEST_TEXT: &[u8] = b"written by the guest, synced\n";

static mut BUF: [u8; 8192] = [0; 8192];

macro_rules! check {
    ($step:expr, $cond:expr, $($arg:tt)*) => {
        if !$cond {
            println!("fs_check: step {} failed: {}", $step, format_args!($($arg)*));
            os::exit($step)
        }
    };
}

fn fs_err(r: Result<impl Sized, Error>) -> Option<FsError> {
    match r {
        Err(Error::Fs(e)) => Some(e),
        _ => None,
    }
}

fn read_all<'a>(fs: &Fs, path: &str, buf: &'a mut [u8]) -> Result<&'a [u8], Error> {
    let h = fs.open(path, open::READ)?;
    let mut n = 0;
    loop {
        let k = fs.read(h, AT_POSITION, &mut buf[n..])?;
        if k == 0 || n + k == buf.len() {
            n += k;
            break;
        }
        n += k;
    }
    fs.close(h)?;
    Ok(&buf[..n])
}

fn block_phase() {
    use wasmos_sdk::abi::MAX_PAYLOAD;
    use wasmos_sdk::block::{self, BlockError, Info, Request, SECTOR};
    let blk = Handle(1);
    let call = |req: Request<'_>, out: &mut [u8]| -> usize {
        let mut msg = [0u8; MAX_PAYLOAD];
        let n = req.encode(&mut msg);
        os::call(blk, &msg[..n], out).unwrap_or_else(|e| {
            println!("fs_check: block call failed: {}", e.name());
            os::exit(90)
        })
    };
    let mut reply = [0u8; MAX_PAYLOAD];
    let n = call(Request { op: block::Op::Info, count: 0, lba: 0, data: &[] }, &mut reply);
    let info = block::decode_result(&reply[..n]).ok().and_then(Info::decode);
    check!(1, info.is_some_and(|i| i.sector_size == 512 && i.max_read == 8 && i.max_write == 7), "INFO: {info:?}");
    let sectors = info.map_or(0, |i| i.sectors);
    let n = call(Request { op: block::Op::Read, count: 8, lba: 0, data: &[] }, &mut reply);
    let boot = block::decode_read_reply(&reply[..n], 8);
    check!(2, boot.is_ok_and(|b| b[510] == 0x55 && b[511] == 0xaa), "sector 0 is no boot sector: {:?}", boot.err());
    // A round trip on an unused reserved sector of FAT32 (sector 3),
    // restored afterwards.
    let mut old = [0u8; SECTOR];
    old.copy_from_slice(&reply[3 * SECTOR..4 * SECTOR]);
    let pattern = [0xa5u8; SECTOR];
    let n = call(Request { op: block::Op::Write, count: 1, lba: 3, data: &pattern }, &mut reply);
    check!(3, block::decode_result(&reply[..n]).is_ok(), "WRITE failed");
    let n = call(Request { op: block::Op::Read, count: 1, lba: 3, data: &[] }, &mut reply);
    check!(4, block::decode_read_reply(&reply[..n], 1) == Ok(&pattern[..]), "read back differs");
    let n = call(Request { op: block::Op::Write, count: 1, lba: 3, data: &old }, &mut reply);
    check!(5, block::decode_result(&reply[..n]).is_ok(), "restoring sector 3 failed");
    let n = call(Request { op: block::Op::Flush, count: 0, lba: 0, data: &[] }, &mut reply);
    check!(6, block::decode_result(&reply[..n]).is_ok(), "FLUSH failed");
    // Refusals: past the end, an overflowing range, too many sectors, a
    // short write, garbage.
    let refused = |req: Request<'_>, want: BlockError, step: i32| {
        let mut reply = [0u8; MAX_PAYLOAD];
        let n = call(req, &mut reply);
        let got = if req.op == block::Op::Read {
            block::decode_read_reply(&reply[..n], req.count).err()
        } else {
            block::decode_result(&reply[..n]).err()
        };
        check!(step, got == Some(want), "{:?} gave {got:?}, not {want:?}", req.op);
    };
    refused(Request { op: block::Op::Read, count: 1, lba: sectors, data: &[] }, BlockError::OutOfRange, 7);
    refused(Request { op: block::Op::Read, count: 2, lba: u64::MAX, data: &[] }, BlockError::OutOfRange, 8);
    refused(Request { op: block::Op::Read, count: 9, lba: 0, data: &[] }, BlockError::TooLarge, 9);
    refused(Request { op: block::Op::Write, count: 2, lba: 3, data: &pattern }, BlockError::BadRequest, 10);
    let n = os::call(blk, &[0xee; 5], &mut reply).unwrap_or(0);
    check!(11, block::decode_result(&reply[..n]) == Err(BlockError::BadRequest), "garbage accepted");
}

fn first_phase(fs: &Fs, buf: &mut [u8]) {
    // Host -> guest.
    let text = read_all(fs, "host.txt", buf);
    check!(20, text == Ok(HOST_TEXT), "host.txt: {text:?}");
    // Round trips through a directory, a rename and a delete.
    check!(21, fs.mkdir("dir").is_ok(), "mkdir");
    let h = fs.open("dir/a file with a long name.bin", open::CREATE | open::EXCLUSIVE | open::READ | open::WRITE);
    check!(22, h.is_ok(), "create: {h:?}");
    let h = h.unwrap_or(0);
    let mut data = [0u8; 6000];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 7 % 256) as u8;
    }
    check!(23, fs.write_all(h, &data).is_ok(), "write");
    check!(24, fs.seek(h, 0, 0) == Ok(0), "seek");
    let mut back = [0u8; 6000];
    let (a, b) = back.split_at_mut(4000);
    let (r1, r2) = (fs.read(h, AT_POSITION, a), fs.read(h, AT_POSITION, b));
    check!(25, r1 == Ok(4000) && r2 == Ok(2000) && back == data, "read back: {r1:?} {r2:?}");
    check!(26, fs.rename("dir/a file with a long name.bin", "dir/renamed.bin").is_ok(), "rename");
    let st = fs.stat("dir/renamed.bin");
    check!(27, st.is_ok_and(|s| s.kind == Kind::File && s.size == 6000), "stat after rename: {st:?}");
    check!(28, fs_err(fs.stat("dir/a file with a long name.bin")) == Some(FsError::NotFound), "old name still there");
    let mut list = [0u8; 512];
    let dir = fs.open("dir", open::READ | open::DIRECTORY).unwrap_or(0);
    let (count, len) = fs.readdir(dir, 0, &mut list).unwrap_or((0, 0));
    let first = DirEntry::decode_all(&list[..len]).next();
    check!(29, count == 1 && first.is_some_and(|e| e.name == "renamed.bin" && e.size == 6000), "readdir: {first:?}");
    check!(30, fs.close(h).is_ok() && fs.unlink("dir/renamed.bin", false).is_ok(), "unlink");
    check!(31, fs_err(fs.unlink("dir/renamed.bin", false)) == Some(FsError::NotFound), "deleted file still there");
    check!(32, fs.close(dir).is_ok() && fs.unlink("dir", true).is_ok(), "rmdir");
    // Hostile requests.
    check!(33, fs_err(fs.read(0x7777, 0, &mut back)) == Some(FsError::BadHandle), "bad handle");
    check!(34, fs_err(fs.open("../outside", open::READ)) == Some(FsError::Escapes), "..");
    check!(35, fs_err(fs.open("a/../../outside", open::READ)) == Some(FsError::Escapes), "a/../..");
    let huge = fs.request(Op::Read, 0x0101, 0, u32::MAX, &[], &mut back);
    check!(36, fs_err(huge) == Some(FsError::BadHandle), "huge read on a bad handle: {huge:?}");
    let hf = fs.open("host.txt", open::READ).unwrap_or(0);
    let clamped = fs.request(Op::Read, hf, 0, u32::MAX, &[], &mut back);
    check!(37, clamped.is_ok_and(|(n, _)| n as usize == HOST_TEXT.len()), "huge length not clamped: {clamped:?}");
    check!(38, fs_err(fs.write(hf, 0, b"x")) == Some(FsError::NotPermitted), "write on a read-only handle");
    let _ = fs.close(hf);
    check!(
        39,
        fs_err(fs.open(core::str::from_utf8(&[b'n'; 300]).unwrap_or(""), open::READ)) == Some(FsError::NameTooLong),
        "long name"
    );
    let raw = os::call(os::lookup(fs::SERVICE).unwrap_or(Handle(0)), &[1, 2, 3], &mut back);
    let answer = raw.ok().and_then(|n| fs::decode_reply(&back[..n]).ok().map(|(r, _)| r));
    check!(40, answer == Some(Err(FsError::BadRequest)), "garbage request: {answer:?}");
    // A full disk: NO_SPACE, and everything is given back.
    let before = fs.statfs().map(|s| s.free_clusters).unwrap_or(0);
    let f = fs.open("fill.bin", open::CREATE | open::WRITE).unwrap_or(0);
    let chunk = [0x5au8; fs::MAX_WRITE];
    let mut written = 0u64;
    let err = loop {
        match fs.write(f, AT_POSITION, &chunk) {
            Ok(n) => written += n as u64,
            Err(e) => break e,
        }
        check!(41, written < 64 << 20, "the disk never filled");
    };
    check!(42, err == Error::Fs(FsError::NoSpace), "a full disk said {err:?}");
    check!(43, fs.close(f).is_ok() && fs.unlink("fill.bin", false).is_ok(), "removing the filler");
    let after = fs.statfs().map(|s| s.free_clusters).unwrap_or(1);
    check!(44, after == before, "free clusters {before} before, {after} after");
    // Guest -> host, and for the next boot.
    let g = fs.open("guest.txt", open::CREATE | open::WRITE | open::TRUNCATE);
    check!(45, g.is_ok_and(|g| fs.write_all(g, GUEST_TEXT).is_ok()), "guest.txt");
    check!(46, fs.sync().is_ok(), "sync");
    println!("fs_check: filled the disk with {written} bytes before NO_SPACE");
}

fn survivors(fs: &Fs, buf: &mut [u8], step: i32) {
    let host = read_all(fs, "host.txt", buf).map(|t| t == HOST_TEXT);
    check!(step, host == Ok(true), "host.txt after: {host:?}");
    let guest = read_all(fs, "guest.txt", buf).map(|t| t == GUEST_TEXT);
    check!(step + 1, guest == Ok(true), "guest.txt after: {guest:?}");
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    let mut store = [0u8; os::env::MAX_BYTES];
    let mut args = [""; os::env::MAX_ARGS];
    let n = os::env::args(&mut store, &mut args);
    let phase = if n > 1 { args[1] } else { "" };
    // SAFETY: one task, one thread; `_start` runs once.
    #[allow(clippy::deref_addrof)]
    let buf = unsafe { &mut *(&raw mut BUF) };
    match phase {
        "block" => block_phase(),
        "first" => first_phase(&Fs::connect_wait(), buf),
        "owner" => {
            let fs = Fs::connect_wait();
            let h = fs.open("host.txt", open::READ);
            check!(50, h == Ok(0x0101), "the first handle is not 0x101: {h:?}");
            check!(51, os::register("fs-owner", None).is_ok(), "register");
            // Wait for the thief to have tried, then use the handle.
            let got = os::recv(None, buf, Some(30_000_000_000));
            check!(52, got.is_ok(), "thief never reported: {got:?}");
            let mut out = [0u8; 64];
            check!(53, fs.read(0x0101, 0, &mut out) == Ok(HOST_TEXT.len()), "the owner's handle broke");
        }
        "thief" => {
            let fs = Fs::connect_wait();
            let owner = os::lookup_wait("fs-owner");
            let mut out = [0u8; 64];
            check!(
                55,
                fs_err(fs.read(0x0101, 0, &mut out)) == Some(FsError::BadHandle),
                "read with the owner's handle"
            );
            check!(56, fs_err(fs.close(0x0101)) == Some(FsError::BadHandle), "close of the owner's handle");
            check!(57, os::send(owner, b"done").is_ok(), "telling the owner");
        }
        "crash" => {
            let fs = Fs::connect_wait();
            let h = fs.open("partial.bin", open::CREATE | open::WRITE).unwrap_or(0);
            let r = fs.write(h, AT_POSITION, &[0x77; 4000]);
            check!(60, r == Err(Error::Ipc(Status::DeadTarget)), "the write the server died in gave {r:?}");
        }
        "after-crash" => {
            let fs = Fs::connect_wait();
            survivors(&fs, buf, 62);
            let p = fs.stat("partial.bin");
            check!(64, fs_err(p) == Some(FsError::NotFound), "the unsynced partial.bin: {p:?}");
        }
        "second" => survivors(&Fs::connect_wait(), buf, 70),
        other => {
            println!("fs_check: unknown phase {other:?}");
            os::exit(99)
        }
    }
    println!("fs_check: {phase} ok");
}
