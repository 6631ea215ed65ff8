//! Which imports a Wasm module may have, checked when it is compiled for a
//! spawn: the `wasmos` system calls of the ABI table
//! ([`wasmos_ipc::abi::FUNCTIONS`]) with exactly their signatures, and any
//! function of WASI preview 1 (those `wasi` does not implement get an
//! `ENOSYS` stub when the task is instantiated). A module importing
//! anything else is `INVALID_WASM` at spawn rather than a trap later.
//!
//! A leaf: `host` registers the functions this admits, and
//! `sched/tests/abi.rs` checks that every table entry links with its
//! signature, so the check and the host functions cannot drift apart.

use wasmi::{FuncType, Module};
use wasmos_ipc::abi;

/// The import module of WASI preview 1.
pub const WASI: &str = "wasi_snapshot_preview1";

/// Whether `name` (of module [`abi::MODULE`]) is a system call of the
/// table with exactly the signature `ty`.
pub fn provides(name: &str, ty: &FuncType) -> bool {
    let wasm = |t: abi::ValType| match t {
        abi::ValType::I32 => wasmi::ValType::I32,
        abi::ValType::I64 => wasmi::ValType::I64,
    };
    abi::function(name).is_some_and(|f| {
        f.params.iter().map(|(_, t)| wasm(*t)).eq(ty.params().iter().copied())
            && f.result.map(wasm).into_iter().eq(ty.results().iter().copied())
    })
}

/// Whether every import of `module` is one we provide.
pub fn known(module: &Module) -> bool {
    module.imports().all(|i| {
        (i.module() == abi::MODULE && i.ty().func().is_some_and(|f| provides(i.name(), f)))
            || (i.module() == WASI && i.ty().func().is_some())
    })
}

/// Whether `module` is a WASI program (imports anything of WASI).
pub fn uses_wasi(module: &Module) -> bool {
    module.imports().any(|i| i.module() == WASI)
}
