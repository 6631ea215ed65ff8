//! The loader on hostile modules: wasm-smith generated ones (valid Wasm,
//! arbitrary imports and code) and raw bytes. Invalid modules must be
//! rejected with an error; valid ones must run or trap cleanly, bounded
//! by fuel, and never take the scheduler down.
#![no_main]
use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let sys = common::system();
    let mut u = Unstructured::new(data);
    let raw = u.ratio(1, 4).unwrap_or(false);
    let bytes = if raw {
        u.take_rest().to_vec()
    } else {
        let mut config = wasm_smith::Config::default();
        config.max_memories = 1;
        config.max_memory32_bytes = 1 << 20;
        config.max_instructions = 1000;
        config.export_everything = true;
        match wasm_smith::Module::new(config, &mut u) {
            Ok(m) => m.to_bytes(),
            Err(_) => return,
        }
    };
    if sys.spawn(&bytes, "fuzz", 0).is_ok() {
        common::run(&sys, 64);
    }
});
