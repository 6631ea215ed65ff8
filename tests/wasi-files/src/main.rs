//! Writes, reads, seeks, truncates, renames and removes files on the
//! writable preopen `/disk`, lists a directory and checks the errno of the
//! bad cases, printing one line per check; exits 0 when all pass, else the
//! number of the check that failed. Leaves only `/disk/wasi.txt` (synced)
//! for the host to read back from the image. With `WASI_FILES_EXPECT_ENV`
//! set, also checks the environment.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;

/// The text the host looks for in `/disk/wasi.txt`.
const SYNCED: &str = "written through WASI, synced\n";

#[repr(C)]
struct Iovec {
    buf: *const u8,
    len: usize,
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_pwrite(fd: u32, iovs: *const Iovec, n: usize, offset: u64, written: *mut usize) -> u16;
    fn fd_pread(fd: u32, iovs: *const Iovec, n: usize, offset: u64, read: *mut usize) -> u16;
    fn fd_close(fd: u32) -> u16;
}

macro_rules! check {
    ($n:expr, $cond:expr, $($what:tt)*) => {{
        if $cond {
            println!("ok {:2} {}", $n, format!($($what)*));
        } else {
            println!("FAILED {:2} {}", $n, format!($($what)*));
            std::process::exit($n);
        }
    }};
}

/// The WASI errno of a failed call (wasi-libc's errno values are WASI's).
fn errno<T>(r: std::io::Result<T>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn pwrite(f: &File, at: u64, bytes: &[u8]) -> (u16, usize) {
    let iov = Iovec { buf: bytes.as_ptr(), len: bytes.len() };
    let mut n = 0;
    // SAFETY: one iovec over `bytes`, and `n` is writable.
    let e = unsafe { fd_pwrite(f.as_raw_fd() as u32, &iov, 1, at, &mut n) };
    (e, n)
}

fn pread(f: &File, at: u64, buf: &mut [u8]) -> (u16, usize) {
    let iov = Iovec { buf: buf.as_mut_ptr(), len: buf.len() };
    let mut n = 0;
    // SAFETY: one iovec over `buf` (writable), and `n` is writable.
    let e = unsafe { fd_pread(f.as_raw_fd() as u32, &iov, 1, at, &mut n) };
    (e, n)
}

fn read(path: &str) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| format!("<{e}>"))
}

fn main() {
    // Left over from an earlier run on the same disk.
    let _ = fs::remove_dir_all("/disk/wf");

    check!(1, fs::create_dir("/disk/wf").is_ok(), "mkdir /disk/wf");
    check!(2, errno(fs::create_dir("/disk/wf")) == Some(20), "mkdir again: EEXIST");
    check!(3, fs::write("/disk/wf/a.txt", "hello").is_ok(), "write a.txt");
    check!(4, read("/disk/wf/a.txt") == "hello", "read a.txt back");

    let mut f = OpenOptions::new().append(true).open("/disk/wf/a.txt").expect("open for append");
    check!(5, f.write_all(b" world").is_ok(), "append");
    // The position means nothing to an append: it still goes to the end.
    let _ = f.seek(SeekFrom::Start(0));
    check!(6, f.write_all(b"!").is_ok(), "append after a seek to 0");
    drop(f);
    check!(7, read("/disk/wf/a.txt") == "hello world!", "appended: {:?}", read("/disk/wf/a.txt"));

    let mut f = File::open("/disk/wf/a.txt").expect("open to read");
    let mut five = [0u8; 5];
    check!(8, f.seek(SeekFrom::Start(6)).ok() == Some(6), "seek to 6");
    check!(9, f.read_exact(&mut five).is_ok() && &five == b"world", "read at 6: {:?}", five);
    check!(10, f.stream_position().ok() == Some(11), "tell after the read");
    check!(11, f.seek(SeekFrom::End(-1)).ok() == Some(11), "seek from the end");
    check!(12, f.seek(SeekFrom::Current(-20)).is_err(), "seek before the start fails");
    check!(13, errno(f.write_all(b"x")) == Some(8), "write to a read-only file: EBADF");
    drop(f);

    let f = OpenOptions::new().read(true).write(true).open("/disk/wf/a.txt").expect("open read-write");
    check!(14, pwrite(&f, 0, b"HELLO") == (0, 5), "pwrite at 0");
    let mut buf = [0u8; 5];
    check!(15, pread(&f, 6, &mut buf) == (0, 5) && &buf == b"world", "pread at 6");
    check!(16, pread(&f, 100, &mut buf) == (0, 0), "pread past the end reads nothing");
    let mut g = &f;
    check!(17, g.stream_position().ok() == Some(0), "pread and pwrite leave the position");
    check!(18, f.set_len(5).is_ok(), "truncate to 5");
    check!(19, f.metadata().map(|m| m.len()).ok() == Some(5), "fstat: 5 bytes");
    check!(20, f.set_len(8).is_ok() && read("/disk/wf/a.txt") == "HELLO\0\0\0", "extend to 8 with zeros");
    check!(21, f.set_len(5).is_ok(), "truncate to 5 again");
    drop(f);
    check!(22, read("/disk/wf/a.txt") == "HELLO", "truncated: {:?}", read("/disk/wf/a.txt"));

    let excl = OpenOptions::new().write(true).create_new(true).open("/disk/wf/a.txt");
    check!(23, errno(excl) == Some(20), "O_EXCL on an existing file: EEXIST");
    check!(24, errno(File::open("/disk/wf/missing")) == Some(44), "open a missing file: ENOENT");
    check!(25, errno(File::open("/disk/nodir/x")) == Some(44), "open under a missing directory: ENOENT");
    let long = format!("/disk/wf/{}", "n".repeat(300));
    check!(57, errno(File::create(&long)) == Some(37), "a name of 300 bytes: ENAMETOOLONG");
    let longer = format!("/disk/wf/{}", "d/".repeat(2100));
    check!(58, errno(File::open(&longer)) == Some(37), "a path of 4200 bytes: ENAMETOOLONG");
    let t = OpenOptions::new().write(true).truncate(true).open("/disk/wf/a.txt");
    check!(26, t.is_ok() && read("/disk/wf/a.txt").is_empty(), "O_TRUNC empties the file");
    check!(27, fs::write("/disk/wf/a.txt", "renamed").is_ok(), "write a.txt again");

    check!(28, fs::rename("/disk/wf/a.txt", "/disk/wf/b.txt").is_ok(), "rename a.txt to b.txt");
    check!(29, errno(fs::metadata("/disk/wf/a.txt")) == Some(44), "a.txt is gone: ENOENT");
    check!(30, read("/disk/wf/b.txt") == "renamed", "b.txt holds it");
    let meta = fs::metadata("/disk/wf/b.txt");
    check!(31, meta.as_ref().is_ok_and(|m| m.is_file() && m.len() == 7), "stat b.txt: a file of 7 bytes");
    check!(32, fs::metadata("/disk/wf").is_ok_and(|m| m.is_dir()), "stat /disk/wf: a directory");

    check!(33, fs::create_dir("/disk/wf/sub").is_ok(), "mkdir sub");
    check!(34, fs::write("/disk/wf/sub/f", "x").is_ok(), "a file in sub");
    check!(35, errno(fs::remove_dir("/disk/wf/sub")) == Some(55), "rmdir a non-empty directory: ENOTEMPTY");
    check!(36, errno(fs::remove_dir("/disk/wf/b.txt")) == Some(54), "rmdir a file: ENOTDIR");
    check!(37, errno(fs::read_dir("/disk/wf/b.txt")) == Some(54), "list a file: ENOTDIR");

    // Enough long names that a listing takes several replies of the server.
    let names: Vec<String> = (0..40).map(|i| format!("entry-with-a-rather-long-name-number-{i:02}.txt")).collect();
    let made = names.iter().all(|n| fs::write(format!("/disk/wf/sub/{n}"), n).is_ok());
    check!(38, made, "40 files in sub");
    let mut listed: Vec<String> = fs::read_dir("/disk/wf/sub")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
        .unwrap_or_default();
    listed.sort();
    let mut want = names.clone();
    want.push("f".into());
    want.sort();
    check!(39, listed == want, "list sub: {} entries", listed.len());
    let mut top: Vec<(String, bool)> = fs::read_dir("/disk/wf")
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                Some((e.file_name().into_string().ok()?, e.file_type().ok()?.is_dir()))
            })
            .collect()
        })
        .unwrap_or_default();
    top.sort();
    check!(40, top == [("b.txt".into(), false), ("sub".into(), true)], "list wf: {top:?}");

    let removed = names.iter().all(|n| fs::remove_file(format!("/disk/wf/sub/{n}")).is_ok());
    check!(41, removed && fs::remove_file("/disk/wf/sub/f").is_ok(), "unlink the files in sub");
    check!(42, errno(fs::remove_file("/disk/wf/sub/f")) == Some(44), "unlink again: ENOENT");
    check!(43, fs::remove_dir("/disk/wf/sub").is_ok(), "rmdir the empty sub");
    check!(44, errno(fs::metadata("/disk/wf/sub")) == Some(44), "sub is gone");
    // WASI's ENOTCAPABLE (WasmOS), or EPERM (what wasmtime answers).
    let out = errno(fs::metadata("/disk/wf/../../x"));
    check!(45, matches!(out, Some(76 | 63)), "a path out of the preopen: ENOTCAPABLE or EPERM");

    // SAFETY: closing a descriptor number that is not open.
    check!(46, unsafe { fd_close(77) } == 8, "close a descriptor that is not open: EBADF");
    // The read-only bundle tree: EROFS on WasmOS. (wasmtime, given a
    // read-only preopen, answers EPERM: `WASI_FILES_READ_ONLY_ERRNO`.)
    let rofs: i32 = std::env::var("WASI_FILES_READ_ONLY_ERRNO").ok().and_then(|e| e.parse().ok()).unwrap_or(69);
    check!(47, errno(fs::create_dir("/data/new")) == Some(rofs), "mkdir in the bundle tree: EROFS");
    check!(48, errno(File::create("/new.txt")) == Some(rofs), "create in the bundle tree: EROFS");
    check!(49, errno(fs::remove_file("/data/hello.txt")) == Some(rofs), "unlink in the bundle tree: EROFS");

    // Many descriptors at once: each one a handle at the server.
    let open: Vec<File> = (0..20).filter_map(|_| File::open("/disk/wf/b.txt").ok()).collect();
    check!(50, open.len() == 20, "20 descriptors open at once");
    drop(open);

    // Only wasi.txt stays, written last and synced, so the disk the host
    // checks holds what this program synced. (The directories fatfs 0.3.6
    // makes have long-name entries before `.` and `..`, which `fsck.fat`
    // reports.)
    check!(51, fs::remove_file("/disk/wf/b.txt").is_ok(), "unlink b.txt");
    check!(52, fs::remove_dir("/disk/wf").is_ok(), "rmdir /disk/wf");

    let mut f = File::create("/disk/wasi.txt").expect("create wasi.txt");
    check!(53, f.write_all(SYNCED.as_bytes()).is_ok() && f.sync_all().is_ok(), "write and sync /disk/wasi.txt");
    drop(f);
    check!(54, read("/disk/wasi.txt") == SYNCED, "read wasi.txt back");
    if let Ok(want) = std::env::var("WASI_FILES_EXPECT_ENV") {
        let got = std::env::var("WASI_FILES_GREETING").unwrap_or_default();
        check!(55, got == want, "environment: WASI_FILES_GREETING={got:?}");
        check!(56, std::env::var("WASMOS_CORES").is_ok(), "environment: WASMOS_CORES is kept");
    }
    println!("wasi-files: all checks passed");
}
