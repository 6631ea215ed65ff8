//! The system-call list is written down outside `ipc/src/abi.rs` three
//! times, for three readers: `docs/ABI.md` (people), the SDK's externs
//! (Rust programs) and the WAT prelude of the test programs. Each test here
//! reads one copy and fails on any name, parameter, signature or error list
//! that disagrees with `wasmos_ipc::abi::FUNCTIONS`. (The kernel's own
//! registrations are checked against the table in `sched/tests/abi.rs`.)

use wasmos_ipc::abi::{FUNCTIONS, Function, ValType, function};

fn repo_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the repository");
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn entry(name: &str) -> &'static Function {
    function(name).unwrap_or_else(|| panic!("`{name}` is not in abi::FUNCTIONS"))
}

fn types(f: &Function) -> (Vec<ValType>, Option<ValType>) {
    (f.params.iter().map(|(_, t)| *t).collect(), f.result)
}

/// The rows of the function table in docs/ABI.md: (name, parameter
/// names, signature, blocks column, errors column).
fn doc_rows(text: &str) -> Vec<(String, Vec<String>, String, String, String)> {
    let section = text.split("## Functions").nth(1).expect("docs/ABI.md has a Functions section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            assert_eq!(cells.len(), 5, "a row of docs/ABI.md's function table has 5 columns: {l}");
            let call = cells[0].trim_matches('`');
            let (name, args) = call.split_once('(').unwrap_or_else(|| panic!("not `name(args)`: {call}"));
            let args = args.trim_end_matches(')').split(',').map(str::trim).filter(|a| !a.is_empty());
            (
                name.to_owned(),
                args.map(String::from).collect(),
                cells[1].trim_matches('`').to_owned(),
                cells[3].to_owned(),
                cells[4].to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_function_table_of_abi_md_is_the_abi_table() {
    let rows = doc_rows(&repo_file("docs/ABI.md"));
    let names: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    let table: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
    assert_eq!(names, table, "docs/ABI.md lists other functions, or in another order");
    for (name, args, signature, blocks, errors) in &rows {
        let f = entry(name);
        let params: Vec<&str> = f.params.iter().map(|(n, _)| *n).collect();
        assert_eq!(args, &params, "{name}: parameter names");
        assert_eq!(signature, &f.signature().to_string(), "{name}: signature");
        let says_blocks = blocks.starts_with("until") || blocks.starts_with("yes");
        assert_eq!(says_blocks, f.blocks, "{name}: blocks? column `{blocks}`");
        let listed: Vec<&str> =
            errors.split(", ").map(|e| e.trim_matches('`')).filter(|e| *e != "none" && !e.is_empty()).collect();
        let expected: Vec<&str> = f.errors.iter().map(|s| s.name()).collect();
        assert_eq!(listed, expected, "{name}: errors column");
    }
}

/// `ptr: *const u8` and friends are i32 offsets in wasm32.
fn rust_type(t: &str) -> ValType {
    match t.trim() {
        "i64" | "u64" => ValType::I64,
        "i32" | "u32" => ValType::I32,
        t if t.starts_with('*') => ValType::I32,
        t => panic!("SDK extern with a parameter type the ABI does not use: {t}"),
    }
}

#[test]
fn the_sdk_declares_every_function_with_its_signature() {
    let text = repo_file("servers/sdk/src/lib.rs");
    let block = text.split("unsafe extern \"C\" {").nth(1).expect("the SDK's extern block");
    let block = block.split("\n    }\n").next().expect("its end");
    // One declaration per `pub fn ...;`, possibly over several lines.
    let mut declared = Vec::new();
    // (Attribute lines such as `#[allow(...)]` before a declaration are skipped.)
    let strip_attributes =
        |d: &str| d.lines().filter(|l| !l.trim_start().starts_with("#[")).collect::<Vec<_>>().join("\n");
    let decls: Vec<String> = block.split(';').map(|d| strip_attributes(d).trim().to_owned()).collect();
    for decl in decls.iter().filter(|d| d.starts_with("pub fn ")) {
        let decl = decl.trim_start_matches("pub fn ");
        let (name, rest) = decl.split_once('(').expect("pub fn name(");
        let (args, ret) = rest.rsplit_once(')').expect("closing parenthesis");
        let params: Vec<ValType> = args
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| rust_type(a.split_once(':').expect("name: type").1))
            .collect();
        let result = match ret.trim().trim_start_matches("->").trim() {
            "!" => None,
            t => Some(rust_type(t)),
        };
        assert_eq!((params, result), types(entry(name)), "SDK extern `{name}`: signature");
        declared.push(name.to_owned());
    }
    let missing: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).filter(|n| !declared.iter().any(|d| d == n)).collect();
    assert!(missing.is_empty(), "the SDK does not declare {missing:?}");
}

#[test]
fn the_wat_prelude_imports_with_the_tables_signatures() {
    let text = repo_file("tests/wasm/prelude.wat");
    let mut seen = 0;
    for line in text.lines().filter(|l| l.trim_start().starts_with("(import \"wasmos\"")) {
        let name = line.split('"').nth(3).expect("(import \"wasmos\" \"name\"");
        let group = |key: &str| -> Vec<ValType> {
            line.split(&format!("({key} "))
                .skip(1)
                .flat_map(|g| {
                    g.split(')').next().unwrap_or("").split_whitespace().map(String::from).collect::<Vec<_>>()
                })
                .map(|t| match t.as_str() {
                    "i32" => ValType::I32,
                    "i64" => ValType::I64,
                    t => panic!("prelude import {name}: type {t}"),
                })
                .collect()
        };
        let result = group("result");
        assert!(result.len() <= 1, "{name}: one result at most");
        assert_eq!((group("param"), result.first().copied()), types(entry(name)), "prelude import `{name}`");
        seen += 1;
    }
    assert!(seen >= 10, "the prelude's imports were not found ({seen})");
}
