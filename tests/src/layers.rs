//! The layers of `sched/`: each module may use only the modules listed
//! before it in [`ORDER`] (the order of `sched/src/lib.rs`'s module list),
//! except for the edges of [`KNOT`], each a place where a core and what it
//! owns point at each other (see `sched/src/lib.rs` and ARCHITECTURE.md,
//! "sched's modules"). A new edge against the order fails here; so does a
//! knot edge that is gone (then strike it from the list).
//!
//! An edge is any `crate::<module>` path outside comments; a module other
//! than the top one may not go through the crate root's re-exports
//! (`crate::{..}`, `crate::System`), which would hide its edges.

use std::collections::BTreeSet;

/// From the bottom layer up.
const ORDER: &[&str] = &[
    "platform",
    "quota",
    "start",
    "imports",
    "compiler",
    "service",
    "envelope",
    "system",
    "task",
    "percore",
    "wasi",
    "host",
    "scheduler",
    "threads",
];

/// Uses of a module listed later, and why each is there.
const KNOT: &[(&str, &str, &str)] = &[
    ("task", "percore", "a task's system calls reach its core (TaskData::state)"),
    ("task", "wasi", "a WASI task's descriptors live in its TaskData"),
    ("percore", "wasi", "instantiating a WASI task links its unimplemented calls to ENOSYS stubs"),
];

/// The top module, which may use the crate root.
const TOP: &str = "threads";

fn sched_source(module: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository");
    let path = root.join("sched/src").join(format!("{module}.rs"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The modules `module` uses, and whether it goes through the root.
fn uses(module: &str) -> (BTreeSet<String>, bool) {
    let mut used = BTreeSet::new();
    let mut through_root = false;
    for line in sched_source(module).lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            match name.chars().next() {
                Some(c) if c.is_ascii_lowercase() => {
                    used.insert(name);
                }
                _ => through_root = true,
            }
        }
    }
    used.remove(module);
    (used, through_root)
}

#[test]
fn the_module_list_is_the_crates() {
    let lib = sched_source("lib");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    assert_eq!(declared, ORDER.iter().copied().collect(), "sched/src/lib.rs's modules and ORDER differ");
}

#[test]
fn each_module_uses_only_the_layers_below_it_but_for_the_knot() {
    let mut wrong = Vec::new();
    let mut knot_seen = BTreeSet::new();
    for (level, module) in ORDER.iter().enumerate() {
        let (used, through_root) = uses(module);
        if through_root && *module != TOP {
            wrong.push(format!("{module} uses the crate root's re-exports (name the module instead)"));
        }
        for other in used {
            let at = ORDER.iter().position(|m| *m == other).unwrap_or_else(|| panic!("{module} uses unknown {other}"));
            if at < level {
                continue;
            }
            match KNOT.iter().find(|(from, to, _)| from == module && *to == other) {
                Some(_) => {
                    knot_seen.insert((*module, other));
                }
                None => wrong.push(format!("{module} uses {other}, a layer above it")),
            }
        }
    }
    for (from, to, why) in KNOT {
        if !knot_seen.iter().any(|(f, t)| f == from && t == to) {
            wrong.push(format!("the knot edge {from} -> {to} ({why}) is gone: strike it from KNOT"));
        }
    }
    assert!(wrong.is_empty(), "sched's layers:\n{}", wrong.join("\n"));
}
