//! Exercises the WASI calls a typical std program makes, printing one line
//! per check (the same lines in QEMU and on Linux) and exiting 42 when all
//! pass. Run with one argument, `hello-arg`.
//!
//! With the argument `echo-stdin` it is the console-input check instead:
//! it says `stdin: ready`, then answers every line it reads on stdin with
//! `echo <n>: <line>`, and at the end of input says how many lines came
//! and exits 0. QEMU's stdin is COM1 (by interrupt), hosted the process's.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn random_get(buf: *mut u8, len: usize) -> u16;
    /// Not implemented by WasmOS: must answer ENOSYS (52), not fail to link.
    fn sock_accept(fd: u32, flags: u16, out: *mut u32) -> u16;
}

fn echo_stdin() -> ! {
    use std::io::{BufRead, Write};
    println!("stdin: ready");
    let mut lines = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin is readable");
        lines += 1;
        println!("echo {lines}: {line}");
        std::io::stdout().flush().expect("stdout");
    }
    println!("stdin: end of input after {lines} lines");
    std::process::exit(0);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("echo-stdin") {
        echo_stdin();
    }
    println!("args: {args:?}");
    assert_eq!(args.get(1).map(String::as_str), Some("hello-arg"), "expected one argument, hello-arg");

    let cores: u32 = std::env::var("WASMOS_CORES").expect("WASMOS_CORES set").parse().expect("a number");
    assert!(cores >= 1);
    println!("environment: WASMOS_CORES is set");

    let text = std::fs::read_to_string("/data/hello.txt").expect("the bundled file");
    print!("file: {text}");
    assert!(std::fs::read("/data/missing.txt").is_err(), "a missing file must not open");
    assert!(std::fs::write("/data/new.txt", b"x").is_err(), "the file tree is read-only");
    println!("files: read-only tree works");

    let start = Instant::now();
    std::thread::sleep(Duration::from_millis(20));
    assert!(start.elapsed() >= Duration::from_millis(20), "slept {:?}", start.elapsed());
    println!("sleep: at least 20 ms");
    assert!(SystemTime::now().duration_since(UNIX_EPOCH).is_ok());
    println!("clock: works");
    std::thread::yield_now();
    println!("yield: back");

    let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
    // SAFETY: both buffers are 16 writable bytes.
    let (ra, rb) = unsafe { (random_get(a.as_mut_ptr(), 16), random_get(b.as_mut_ptr(), 16)) };
    assert!(ra == 0 && rb == 0 && a != b && a != [0; 16], "random_get");
    println!("random: two draws differ");

    let mut fd = 0u32;
    // SAFETY: `fd` is a writable u32.
    let errno = unsafe { sock_accept(3, 0, &mut fd) };
    assert_eq!(errno, 52, "unimplemented calls answer ENOSYS");
    println!("sock_accept: ENOSYS, carrying on");
    std::process::exit(42);
}
