//! The program's arguments, as its starter gave them (`task_spawn`'s
//! argv; boot.cfg's `args.<file>=`; `wasmos-hosted prog.wasm -- args`).
//! Read through WASI's `args_get`, which both platforms provide, so a
//! program needs no second way to get them.

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn args_sizes_get(argc: *mut u32, buf_len: *mut u32) -> u16;
    fn args_get(argv: *mut *mut u8, buf: *mut u8) -> u16;
}

/// Most arguments and bytes [`args`] reads.
pub const MAX_ARGS: usize = 32;
pub const MAX_BYTES: usize = 1024;

/// The arguments (argv[0] is the program's name), copied into `store`.
/// Returns how many there are; more than fit are dropped.
pub fn args<'a>(store: &'a mut [u8; MAX_BYTES], out: &mut [&'a str; MAX_ARGS]) -> usize {
    let (mut argc, mut len) = (0u32, 0u32);
    // SAFETY: both pointers are to live u32s.
    if unsafe { args_sizes_get(&mut argc, &mut len) } != 0 || argc as usize > MAX_ARGS || len as usize > MAX_BYTES {
        return 0;
    }
    let mut ptrs = [core::ptr::null_mut::<u8>(); MAX_ARGS];
    // SAFETY: `ptrs` has room for argc pointers and `store` for len bytes,
    // as args_sizes_get just said.
    if unsafe { args_get(ptrs.as_mut_ptr(), store.as_mut_ptr()) } != 0 {
        return 0;
    }
    let base = store.as_ptr() as usize;
    let store: &'a [u8] = store;
    let mut n = 0;
    for p in &ptrs[..argc as usize] {
        let start = (*p as usize).wrapping_sub(base);
        let Some(rest) = store.get(start..len as usize) else { break };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        out[n] = core::str::from_utf8(&rest[..end]).unwrap_or("");
        n += 1;
    }
    n
}

/// The value after `--name` among the arguments, if given.
pub fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0].strip_prefix("--") == Some(name)).map(|w| w[1])
}
