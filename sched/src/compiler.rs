//! Compiled code: which wasmi engine compiles a binary, the cache of
//! compiled modules, and the budget that bounds the kernel memory both
//! hold.
//!
//! wasmi's engine keeps every function it compiled for as long as the
//! engine lives (its code map is append-only; dropping a `Module` frees
//! about a tenth of it), and everything compiled by one engine is freed
//! only when the engine is. So code is compiled in *generations*: one
//! engine at a time is current; once the code charged to it reaches
//! [`Compiler::generation_cost`], the next binary starts a new engine, and
//! the old one is freed by wasmi when the last module, store and linker
//! that use it are gone (a task pins the generation it was compiled in
//! until it ends). Without generations, a task spawning an endless stream
//! of distinct binaries would grow the kernel heap until it panicked.
//!
//! The budget counts every generation still alive. A binary's cost is an
//! estimate made before compiling it: [`COMPILED_BYTES_PER_BYTE`] times its
//! length for the compiled code, plus its length for the copy the cache
//! keeps to confirm hits. A binary spawned by an ordinary task is refused
//! (`NO_MEMORY`) when it would take the live total over the budget. What
//! the kernel and the tasks it started (init, system servers) compile is
//! counted but never refused: it is what the machine's owner listed in the
//! boot bundle and `boot.cfg`, and ordinary tasks get what it leaves.

use alloc::boxed::Box;
use alloc::vec::Vec;

use wasmi::{Engine, EngineWeak, Module};
use wasmos_ipc::abi::Status;

/// Distinct compiled modules kept for reuse.
pub const MODULE_CACHE: usize = 128;

/// Heap bytes the compiled code of one byte of Wasm binary takes, at
/// most, as measured (wasmi 2.0, eager compilation, fuel metering): 3.4x
/// for the file server, 3.8x for the WASI check program, 4.1-5.1x for
/// init, webapi, token_ring and fs_check. 6 leaves a margin; a binary built
/// to compile large could exceed it, which the share of the heap left to
/// the kernel itself absorbs.
pub const COMPILED_BYTES_PER_BYTE: usize = 6;

/// FNV-1a, to find cached modules quickly (a hit is confirmed byte by byte).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// The budget's cost of compiling `len` bytes of binary (and caching it).
pub fn cost(len: usize) -> usize {
    len.saturating_mul(COMPILED_BYTES_PER_BYTE + 1)
}

/// A compiled module and the binary it came from: (FNV-1a hash, bytes, module).
type CachedModule = (u64, Box<[u8]>, Module);

/// The engine generations, the cache and the budget (behind one lock in
/// `System`; compiling itself happens outside it, see [`Compiler::reserve`]).
pub struct Compiler {
    config: wasmi::Config,
    current: Engine,
    /// Cost charged to the current engine.
    current_cost: usize,
    /// Earlier engines, each with its cost, until wasmi frees them.
    retired: Vec<(EngineWeak, usize)>,
    /// Modules of the current engine, by content.
    cache: Vec<CachedModule>,
    budget: usize,
    /// Generations started before the current one.
    generation: u64,
}

/// A compile the budget has accepted: the engine to compile with.
pub struct Reservation {
    pub engine: Engine,
    hash: u64,
}

impl Compiler {
    pub fn new(config: wasmi::Config, budget: usize) -> Compiler {
        let current = Engine::new(&config);
        Compiler { config, current, current_cost: 0, retired: Vec::new(), cache: Vec::new(), budget, generation: 0 }
    }

    /// The cost at which the current engine is retired: a quarter of the
    /// budget, so that the current generation fits beside one that
    /// long-lived tasks pin and one on its way out (a core's linker holds
    /// the engine it last instantiated from until it instantiates from a
    /// newer one or goes idle after a newer one started, `CoreState`).
    pub fn generation_cost(&self) -> usize {
        self.budget / 4
    }

    /// How many generations started before the current one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The cost of every generation still alive.
    pub fn live_cost(&mut self) -> usize {
        self.retired.retain(|(engine, _)| engine.upgrade().is_some());
        self.current_cost + self.retired.iter().map(|(_, cost)| cost).sum::<usize>()
    }

    /// The cached module compiled from exactly `bytes`, if any.
    pub fn cached(&self, hash: u64, bytes: &[u8]) -> Option<Module> {
        self.cache.iter().find(|(h, b, _)| *h == hash && **b == *bytes).map(|(_, _, m)| m.clone())
    }

    /// Charges compiling `len` bytes (whose hash is `hash`) to the current
    /// generation, starting a new one first if this one is full; if
    /// `bounded` (an ordinary task asks), refused with `NO_MEMORY` when the
    /// live generations would exceed the budget. The charge stays with the
    /// generation even if the compile then fails (an invalid binary is
    /// cheap to refuse: the parser stops at the first error).
    pub fn reserve(&mut self, hash: u64, len: usize, bounded: bool) -> Result<Reservation, Status> {
        let cost = cost(len);
        if bounded && self.live_cost().saturating_add(cost) > self.budget {
            return Err(Status::NoMemory);
        }
        if self.current_cost > 0 && self.current_cost.saturating_add(cost) > self.generation_cost() {
            let old = core::mem::replace(&mut self.current, Engine::new(&self.config));
            self.retired.push((old.weak(), core::mem::take(&mut self.current_cost)));
            // The cache would keep the old engine alive.
            self.cache.clear();
            self.generation += 1;
        }
        self.current_cost += cost;
        Ok(Reservation { engine: self.current.clone(), hash })
    }

    /// Keeps `module`, compiled from `bytes` under `reservation`, for
    /// reuse, if its engine is still the current one.
    pub fn keep(&mut self, reservation: Reservation, bytes: &[u8], module: &Module) {
        if !Engine::same(&reservation.engine, &self.current) {
            return;
        }
        if self.cache.len() >= MODULE_CACHE {
            self.cache.remove(0);
        }
        self.cache.push((reservation.hash, bytes.into(), module.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_generations_are_retired_and_freed_with_their_last_user() {
        // Each 100-byte binary costs 700; a generation holds 1400.
        let mut c = Compiler::new(wasmi::Config::default(), 5600);
        let a = c.reserve(1, 100, true).unwrap();
        let b = c.reserve(2, 100, true).unwrap();
        assert!(Engine::same(&a.engine, &b.engine), "1400 fit one generation");
        let third = c.reserve(3, 100, true).unwrap();
        assert!(!Engine::same(&a.engine, &third.engine), "the third starts a new generation");
        let more: Vec<Reservation> = (4..9).map(|h| c.reserve(h, 100, true).unwrap()).collect();
        assert_eq!(c.live_cost(), 5600);
        assert_eq!(c.reserve(9, 100, true).err(), Some(Status::NoMemory), "the budget is full");
        let trusted = c.reserve(9, 100, false).unwrap();
        assert_eq!(c.live_cost(), 6300, "the kernel's own compiles are counted, never refused");
        drop((a, b));
        assert_eq!(c.live_cost(), 4900, "the first generation is freed with its last user");
        assert!(c.reserve(10, 100, true).is_ok());
        drop((third, more, trusted));
    }

    #[test]
    fn only_the_current_generation_is_cached() {
        let mut c = Compiler::new(wasmi::Config::default(), 5600);
        let bytes = wat::parse_str("(module)").unwrap();
        let r = c.reserve(9, 300, true).unwrap();
        let module = Module::new(&r.engine, &bytes[..]).unwrap();
        let stale = c.reserve(10, 100, true).unwrap();
        assert!(!Engine::same(&r.engine, &stale.engine));
        c.keep(r, &bytes, &module);
        assert!(c.cached(9, &bytes).is_none(), "a module of a retired engine would keep it alive");
        let current = Module::new(&stale.engine, &bytes[..]).unwrap();
        c.keep(stale, &bytes, &current);
        assert!(c.cached(9, &bytes).is_none(), "another hash");
        assert!(c.cached(10, &bytes).is_some());
    }
}
