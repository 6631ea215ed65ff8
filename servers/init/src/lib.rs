//! init: the first task. The kernel starts it on core 0 with the right to
//! read the boot bundle; it reads `boot.cfg` and starts every program
//! listed in `spawn=`:
//!
//! ```text
//! spawn=token_ring.wasm@all,myapp.wasm,server.wasm@3
//! ```
//!
//! `name.wasm` runs on a core the kernel picks, `@k` on core k, `@all` one
//! copy per core. The bundle file `args/name.wasm` gives a program its
//! arguments, each one ended by a NUL byte, taken exactly as they are
//! (spaces, quotes and all; WASI programs see them as argv).

#![no_std]

use wasmos_sdk::{self as os, println};

/// Largest program init can start (a bound on a static buffer).
const MAX_PROGRAM: usize = 4 << 20;

/// Most arguments a program gets, argv[0] included (the SDK's
/// `spawn_args` also bounds their total length, to 1024 bytes).
const MAX_ARGS: usize = 32;

struct Buffers {
    config: [u8; 4096],
    args: [u8; 1024],
    program: [u8; MAX_PROGRAM],
}

static mut BUFFERS: Buffers = Buffers { config: [0; 4096], args: [0; 1024], program: [0; MAX_PROGRAM] };

#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    // SAFETY: a Wasm task is single-threaded and `_start` runs once, so
    // this is the only reference to the buffers.
    // (`&raw mut` then a reborrow: a direct `&mut BUFFERS` is rejected for
    // `static mut` in edition 2024.)
    #[allow(clippy::deref_addrof)]
    let buffers = unsafe { &mut *(&raw mut BUFFERS) };
    let config = match os::boot_file("boot.cfg", &mut buffers.config) {
        Ok(n) => core::str::from_utf8(&buffers.config[..n]).unwrap_or(""),
        Err(e) => {
            println!("cannot read boot.cfg: {}", e.name());
            os::exit(1)
        }
    };
    let Some(list) = config.lines().rev().find_map(|l| l.trim().strip_prefix("spawn=")) else {
        println!("nothing to start (no spawn= in boot.cfg)");
        return;
    };
    let mut failures = 0;
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (file, placement) = item.split_once('@').unwrap_or((item, ""));
        let len = match os::boot_file(file, &mut buffers.program) {
            Ok(len) => len,
            Err(e) => {
                println!("cannot read {file}: {}", e.name());
                failures += 1;
                continue;
            }
        };
        let name = file.trim_end_matches(".wasm");
        let wasm = &buffers.program[..len];
        let mut argv = [""; MAX_ARGS];
        argv[0] = name;
        let argc = match program_args(file, &mut buffers.args, &mut argv[1..]) {
            Ok(n) => 1 + n,
            Err(why) => {
                println!("cannot start {name}: its arguments (args/{file}): {why}");
                failures += 1;
                continue;
            }
        };
        let mut start = |core: Option<u32>| match os::spawn_args(wasm, &argv[..argc], core, &[]) {
            Ok(_) => println!("started {name} on {}", Placement(core)),
            Err(e) => {
                println!("cannot start {name} on {}: {}", Placement(core), e.name());
                failures += 1;
            }
        };
        match placement {
            "" => start(None),
            "all" => (0..os::core_count()).for_each(|c| start(Some(c))),
            n => match n.parse() {
                Ok(core) => start(Some(core)),
                Err(_) => {
                    println!("bad placement in {item:?}");
                    failures += 1;
                }
            },
        }
    }
    os::exit(failures)
}

/// Reads `args/<file>` (each argument ended by a NUL) into `buf` and
/// points `out` at its arguments; returns how many. No file: none.
fn program_args<'b>(file: &str, buf: &'b mut [u8], out: &mut [&'b str]) -> Result<usize, &'static str> {
    let mut path = [0u8; 256];
    let key = b"args/";
    if key.len() + file.len() > path.len() {
        return Err("file name too long");
    }
    path[..key.len()].copy_from_slice(key);
    path[key.len()..key.len() + file.len()].copy_from_slice(file.as_bytes());
    let path = core::str::from_utf8(&path[..key.len() + file.len()]).map_err(|_| "file name not UTF-8")?;
    let len = match os::boot_file(path, buf) {
        Ok(len) => len,
        Err(os::Status::NotFound) => return Ok(0),
        Err(e) => return Err(e.name()),
    };
    let text = core::str::from_utf8(&buf[..len]).map_err(|_| "not UTF-8")?;
    let Some(text) = text.strip_suffix('\0') else {
        return if text.is_empty() { Ok(0) } else { Err("last argument not ended by NUL") };
    };
    let mut n = 0;
    for arg in text.split('\0') {
        *out.get_mut(n).ok_or("too many arguments")? = arg;
        n += 1;
    }
    Ok(n)
}

struct Placement(Option<u32>);

impl core::fmt::Display for Placement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(core) => write!(f, "core {core}"),
            None => f.write_str("any core"),
        }
    }
}
