//! The Wasm bench programs (`bench/wasm/*.wat`): the same binaries run in
//! the kernel's bench mode (xtask puts them in the boot bundle as
//! `bench/<name>.wasm`) and under the hosted runtime ([`crate::hosted`]).
//! Each file is a module body; [`get`] wraps it with `prelude.wat`, except
//! `nop`, a complete module (spawn time is measured without WASI set-up).

pub const PRELUDE: &str = include_str!("../wasm/prelude.wat");

macro_rules! programs {
    ($($name:literal),* $(,)?) => {
        /// Every program: (name, source).
        pub const ALL: &[(&str, &str)] = &[$(($name, include_str!(concat!("../wasm/", $name, ".wat")))),*];
    };
}

programs!("clock", "null", "crc32", "echo_server", "echo_client", "yield", "producer", "consumer", "nop");

/// The assembled program `name`.
pub fn get(name: &str) -> Vec<u8> {
    let body = ALL.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no bench program {name}")).1;
    let text = if name == "nop" { format!("(module {body})") } else { format!("(module {PRELUDE} {body})") };
    wat::parse_str(text).unwrap_or_else(|e| panic!("bench program {name} does not assemble: {e}"))
}

/// Bundle entry name of a program.
pub fn bundle_name(name: &str) -> String {
    format!("bench/{name}.wasm")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_program_assembles() {
        for (name, _) in super::ALL {
            assert_eq!(&super::get(name)[..4], b"\0asm", "{name}");
        }
    }
}
