//! Start functions run like `_start`: preemptible, resumable, with every
//! system call.
//!
//! wasmi runs a module's start function inside instantiation
//! (`Linker::instantiate_and_start`), as a plain call: it cannot be
//! resumed, so a start function that ran out of fuel trapped (and its task
//! was killed after one slice, about a thousand loop iterations), a
//! blocking system call in it trapped, and the task's memory was not yet
//! known to the system calls. wasmi 2.0 has no way to instantiate without
//! starting. So the kernel takes the start function out of the module
//! before compiling it: [`defer`] drops the binary's start section and
//! exports the same function as [`START_EXPORT`]; the scheduler calls that
//! export first, as a resumable call exactly like `_start`, then `_start`.
//! The start function still runs before anything else of the module, once.
//!
//! [`START_EXPORT`] is reserved: a module exporting that name itself is
//! refused (`INVALID_WASM`), so only a start function is ever run as one.

use alloc::vec::Vec;

/// The export the start function is moved to. Not a name a compiler
/// gives anything (export names are any UTF-8 string).
pub const START_EXPORT: &str = "wasmos:start";

const EXPORT_SECTION: u8 = 7;
const START_SECTION: u8 = 8;
/// The export kind of a function.
const FUNC: u8 = 0;

/// Why a binary is refused before wasmi sees it.
#[derive(Debug, PartialEq, Eq)]
pub struct Reserved;

/// The binary with its start function moved to the export
/// [`START_EXPORT`] (`Ok(Some)`), or `Ok(None)` when it has no start
/// section or is not a well-formed binary (wasmi then judges the original).
/// `Err` when it exports [`START_EXPORT`] itself.
pub fn defer(bytes: &[u8]) -> Result<Option<Vec<u8>>, Reserved> {
    let Some(sections) = sections(bytes) else { return Ok(None) };
    let export = sections.iter().find(|s| s.id == EXPORT_SECTION);
    if let Some(export) = export {
        match exports(&bytes[export.body.clone()]) {
            // Malformed exports are wasmi's to report.
            None => return Ok(None),
            Some(names) if names.contains(&START_EXPORT.as_bytes()) => return Err(Reserved),
            Some(_) => {}
        }
    }
    let Some(start) = sections.iter().find(|s| s.id == START_SECTION) else { return Ok(None) };
    let Some((func, used)) = leb_u32(&bytes[start.body.clone()]) else { return Ok(None) };
    if used != start.body.len() {
        return Ok(None);
    }
    // The new export entry: name, kind, function index.
    let mut entry = Vec::new();
    push_leb(&mut entry, START_EXPORT.len() as u32);
    entry.extend_from_slice(START_EXPORT.as_bytes());
    entry.push(FUNC);
    push_leb(&mut entry, func);

    let mut out = Vec::with_capacity(bytes.len() + entry.len() + 8);
    out.extend_from_slice(&bytes[..8]);
    let new_exports = |out: &mut Vec<u8>, old: Option<&[u8]>| -> Option<()> {
        let (count, rest) = match old {
            Some(body) => {
                let (count, used) = leb_u32(body)?;
                (count.checked_add(1)?, &body[used..])
            }
            None => (1, &[][..]),
        };
        let mut body = Vec::new();
        push_leb(&mut body, count);
        body.extend_from_slice(rest);
        body.extend_from_slice(&entry);
        out.push(EXPORT_SECTION);
        push_leb(out, u32::try_from(body.len()).ok()?);
        out.extend_from_slice(&body);
        Some(())
    };
    for section in &sections {
        match section.id {
            EXPORT_SECTION => {
                if new_exports(&mut out, Some(&bytes[section.body.clone()])).is_none() {
                    return Ok(None);
                }
            }
            // Without an export section, the new one takes the start
            // section's place: sections are ordered, and export (7) comes
            // right before start (8).
            START_SECTION if export.is_none() => {
                if new_exports(&mut out, None).is_none() {
                    return Ok(None);
                }
            }
            START_SECTION => {}
            _ => out.extend_from_slice(&bytes[section.whole.clone()]),
        }
    }
    Ok(Some(out))
}

struct Section {
    id: u8,
    /// The whole section: id, size and body.
    whole: core::ops::Range<usize>,
    body: core::ops::Range<usize>,
}

/// The sections of a Wasm binary (version 1), or `None` if it is not one.
fn sections(bytes: &[u8]) -> Option<Vec<Section>> {
    if bytes.get(..8)? != b"\0asm\x01\0\0\0" {
        return None;
    }
    let mut at = 8;
    let mut list = Vec::new();
    while at < bytes.len() {
        let id = bytes[at];
        let (len, used) = leb_u32(&bytes[at + 1..])?;
        let body = at + 1 + used;
        let end = body.checked_add(len as usize).filter(|&e| e <= bytes.len())?;
        list.push(Section { id, whole: at..end, body: body..end });
        at = end;
    }
    Some(list)
}

/// The names in an export section's body, or `None` if it is malformed.
fn exports(mut body: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, used) = leb_u32(body)?;
    body = &body[used..];
    let mut names = Vec::new();
    for _ in 0..count {
        let (len, used) = leb_u32(body)?;
        let name = body.get(used..used.checked_add(len as usize)?)?;
        body = &body[used + len as usize..];
        names.push(name);
        let kind_and_index = body.get(1..)?;
        let (_, used) = leb_u32(kind_and_index)?;
        body = &kind_and_index[used..];
    }
    body.is_empty().then_some(names)
}

/// An unsigned LEB128 `u32` at the start of `bytes` and its length.
fn leb_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

fn push_leb(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(text: &str) -> Vec<u8> {
        wat::parse_str(text).unwrap()
    }

    #[test]
    fn the_start_function_becomes_an_export() {
        for text in [
            // With an export section, and without one.
            r#"(module (func $s) (func (export "_start")) (start $s))"#,
            r#"(module (func $s) (start $s))"#,
            r#"(module (memory 1) (func $a) (func $s (drop (i32.const 1))) (start $s) (data (i32.const 0) "x"))"#,
        ] {
            let moved = defer(&wat(text)).unwrap().expect("has a start section");
            let engine = wasmi::Engine::default();
            let module = wasmi::Module::new(&engine, &moved[..]).expect("still valid");
            assert!(module.exports().any(|e| e.name() == START_EXPORT), "{text}");
            let sections = sections(&moved).unwrap();
            assert!(!sections.iter().any(|s| s.id == START_SECTION), "{text}");
        }
    }

    #[test]
    fn binaries_without_a_start_function_are_left_alone() {
        assert_eq!(defer(&wat(r#"(module (func (export "_start")))"#)), Ok(None));
        assert_eq!(defer(b"not wasm"), Ok(None));
        assert_eq!(defer(b"\0asm\x01\0\0\0\x08\x05"), Ok(None), "a section running past the end");
    }

    #[test]
    fn the_reserved_name_is_refused() {
        let text = r#"(module (func (export "wasmos:start")))"#;
        assert_eq!(defer(&wat(text)), Err(Reserved));
    }

    #[test]
    fn leb128_round_trips() {
        for v in [0, 1, 127, 128, 300, 16_384, u32::MAX] {
            let mut out = Vec::new();
            push_leb(&mut out, v);
            assert_eq!(leb_u32(&out), Some((v, out.len())));
        }
        assert_eq!(leb_u32(&[0x80, 0x80, 0x80, 0x80, 0x80]), None);
    }
}
