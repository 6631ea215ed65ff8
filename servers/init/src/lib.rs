//! init: the first task. The kernel starts it on core 0 with the right to
//! read the boot bundle; it reads `boot.cfg` and starts every program
//! listed in `spawn=`:
//!
//! ```text
//! spawn=token_ring.wasm@all,myapp.wasm,server.wasm@3
//! ```
//!
//! `name.wasm` runs on a core the kernel picks, `@k` on core k, `@all` one
//! copy per core. `args.name.wasm=a b c` gives a program its arguments
//! (separated by spaces; WASI programs see them as argv).

#![no_std]

use wasmos_sdk::{self as os, println};

/// Largest program init can start (a bound on a static buffer).
const MAX_PROGRAM: usize = 4 << 20;

struct Buffers {
    config: [u8; 4096],
    program: [u8; MAX_PROGRAM],
}

static mut BUFFERS: Buffers = Buffers { config: [0; 4096], program: [0; MAX_PROGRAM] };

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
        // `args.<file>=a b c`: the program's arguments (argv[0] is its name).
        let key = Key(file);
        let args = config.lines().rev().find_map(|l| key.value_in(l)).unwrap_or("");
        let mut argv = [""; 32];
        argv[0] = name;
        let mut argc = 1;
        for arg in args.split_whitespace().take(argv.len() - 1) {
            argv[argc] = arg;
            argc += 1;
        }
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

/// The `args.<file>=` key of boot.cfg.
struct Key<'a>(&'a str);

impl<'a> Key<'a> {
    fn value_in<'l>(&self, line: &'l str) -> Option<&'l str> {
        let rest = line.trim().strip_prefix("args.")?.strip_prefix(self.0)?;
        rest.strip_prefix('=')
    }
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
