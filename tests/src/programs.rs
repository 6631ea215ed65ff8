//! The Wasm test programs (`tests/wasm/*.wat`), shared by the scheduler's
//! host tests and the in-kernel suites (xtask puts them in the boot bundle
//! as `test/<name>.wasm`). Each file is a module body; [`module`] wraps it
//! with the common prelude of imports and helpers.

/// Imports and helpers every program may use.
pub const PRELUDE: &str = include_str!("../wasm/prelude.wat");

macro_rules! programs {
    ($($name:literal),* $(,)?) => {
        /// Every program: (name, module body).
        pub const ALL: &[(&str, &str)] = &[$(($name, include_str!(concat!("../wasm/", $name, ".wat")))),*];
    };
}

programs!(
    "hello",
    "quick",
    "spinner",
    "echo_server",
    "echo_client",
    "dying_server",
    "storm_sink",
    "storm_sender",
    "nocap",
    "fault_unreachable",
    "fault_oob",
    "fault_divzero",
    "fault_recursion",
    "memory_hog",
    "sleeper",
    "spawn_bomb",
    "rate_server",
    "rate_client",
    "cpu_hog",
    "flooder",
    "forger",
    "host_calls",
    "namer",
    "name_flood",
    "msg_flood",
    "killer",
    "names_probe",
    "compile_leaf",
    "compile_churn",
    "compile_flood",
);

/// Assembles `(module <prelude> <body>)`.
pub fn module(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {body})"))
        .unwrap_or_else(|e| panic!("test program does not assemble: {e}"))
}

/// The assembled program `name`. A program that spawns a child gets it
/// embedded (`$CHILD_BYTES`, `$CHILD_LEN`): the program named on its
/// `;; child: <name>` line, else `sleeper`.
pub fn get(name: &str) -> Vec<u8> {
    let body = ALL.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no test program {name}")).1;
    if body.contains("$CHILD_BYTES") {
        let child = body.lines().find_map(|l| l.trim().strip_prefix(";; child: ")).unwrap_or("sleeper");
        let child = get(child.trim());
        let escaped: String = child.iter().map(|b| format!("\\{b:02x}")).collect();
        return module(&body.replace("$CHILD_BYTES", &escaped).replace("$CHILD_LEN", &child.len().to_string()));
    }
    module(body)
}

/// Bundle entry name of a test program.
pub fn bundle_name(name: &str) -> String {
    format!("test/{name}.wasm")
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_program_assembles_and_validates_as_wasm() {
        for (name, _) in super::ALL {
            let bytes = super::get(name);
            assert_eq!(&bytes[..4], b"\0asm", "{name}");
        }
    }
}
