//! The WasmOS boot bundle: one flat file, loaded by the bootloader as the
//! ramdisk, that carries the boot configuration and the Wasm payloads.
//!
//! xtask writes it ([`Writer`], feature `alloc`); the kernel reads it in
//! place ([`Bundle::parse`]) without copying. Layout, all integers
//! little-endian:
//!
//! ```text
//! magic   "WOSBNDL1"                      8 bytes
//! count   u32                             number of entries
//! entry*  name_len u32, name (UTF-8), data_len u32, data
//! ```
//!
//! By convention the entry `boot.cfg` holds `key=value` lines (see
//! [`Config`]) and `*.wasm` entries are Wasm modules.

#![no_std]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

/// First eight bytes of every bundle.
pub const MAGIC: &[u8; 8] = b"WOSBNDL1";
/// Name of the configuration entry.
pub const CONFIG_ENTRY: &str = "boot.cfg";

/// Why a bundle could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    BadMagic,
    Truncated { at: usize },
    NameNotUtf8 { index: u32 },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadMagic => write!(f, "not a WasmOS bundle (bad magic)"),
            Error::Truncated { at } => write!(f, "bundle truncated at byte {at}"),
            Error::NameNotUtf8 { index } => write!(f, "entry {index} has a name that is not UTF-8"),
        }
    }
}

/// A bundle validated once at parse time; iteration cannot fail afterwards.
#[derive(Clone, Copy)]
pub struct Bundle<'a> {
    count: u32,
    entries: &'a [u8],
}

/// One named blob in a bundle.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32, Error> {
    let b = bytes.get(at..at + 4).ok_or(Error::Truncated { at })?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits the entry at `at`, returning it and the offset of the next one.
fn read_entry(bytes: &[u8], at: usize, index: u32) -> Result<(Entry<'_>, usize), Error> {
    let name_len = read_u32(bytes, at)? as usize;
    let name_at = at + 4;
    let name = bytes.get(name_at..name_at + name_len).ok_or(Error::Truncated { at: name_at })?;
    let name = core::str::from_utf8(name).map_err(|_| Error::NameNotUtf8 { index })?;
    let len_at = name_at + name_len;
    let data_len = read_u32(bytes, len_at)? as usize;
    let data_at = len_at + 4;
    let data = bytes.get(data_at..data_at + data_len).ok_or(Error::Truncated { at: data_at })?;
    Ok((Entry { name, data }, data_at + data_len))
}

impl<'a> Bundle<'a> {
    /// Checks the whole bundle so that later lookups cannot fail.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(Error::BadMagic);
        }
        let count = read_u32(bytes, 8)?;
        let entries = &bytes[12..];
        let mut at = 0;
        for index in 0..count {
            at = read_entry(entries, at, index)?.1;
        }
        Ok(Bundle { count, entries })
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let entries = self.entries;
        let mut at = 0;
        (0..self.count).map(move |index| {
            let (entry, next) = read_entry(entries, at, index).expect("validated by parse");
            at = next;
            entry
        })
    }

    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter().find(|e| e.name == name).map(|e| e.data)
    }

    /// The boot configuration, empty when the bundle has none.
    pub fn config(&self) -> Config<'a> {
        Config { text: self.get(CONFIG_ENTRY).and_then(|d| core::str::from_utf8(d).ok()).unwrap_or("") }
    }
}

/// What the kernel does after booting (`mode=` in `boot.cfg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Start the programs `spawn=` lists and keep running (the default).
    Run,
    /// Run the in-kernel tests and exit QEMU with their status.
    Test,
    /// Take a page fault on purpose to show the exception report.
    FaultDemo,
    /// Run a mixed workload for `soak_seconds` and report leaks.
    Soak,
    /// Run the benchmarks (Wasm path and native ring-3 path) and report
    /// them on the result channel (`bench/src/protocol.rs`).
    Bench,
}

impl Mode {
    pub const ALL: [Mode; 5] = [Mode::Run, Mode::Test, Mode::FaultDemo, Mode::Soak, Mode::Bench];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Test => "test",
            Mode::FaultDemo => "fault-demo",
            Mode::Soak => "soak",
            Mode::Bench => "bench",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }
}

/// `key=value` lines; blank lines and lines starting with `#` are ignored.
/// A later line wins over an earlier one with the same key.
#[derive(Clone, Copy)]
pub struct Config<'a> {
    text: &'a str,
}

impl<'a> Config<'a> {
    pub fn new(text: &'a str) -> Self {
        Config { text }
    }

    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.text
            .lines()
            .rev()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim())
            .next()
    }
}

/// Builds a bundle in memory.
#[cfg(any(test, feature = "alloc"))]
#[derive(Default)]
pub struct Writer {
    entries: alloc::vec::Vec<(alloc::string::String, alloc::vec::Vec<u8>)>,
}

#[cfg(any(test, feature = "alloc"))]
impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry; a second entry with the same name replaces the first.
    pub fn add(&mut self, name: &str, data: impl Into<alloc::vec::Vec<u8>>) -> &mut Self {
        let data = data.into();
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = data,
            None => self.entries.push((name.into(), data)),
        }
        self
    }

    pub fn to_bytes(&self) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for (name, data) in &self.entries {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.add("boot.cfg", b"mode=test\n# comment\ntests=smp, memory\nmode=run\n".to_vec());
        w.add("a.wasm", b"\0asm".to_vec());
        let bytes = w.to_bytes();
        let b = Bundle::parse(&bytes).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b.get("a.wasm"), Some(&b"\0asm"[..]));
        assert_eq!(b.config().get("mode"), Some("run"));
        assert_eq!(b.config().get("tests"), Some("smp, memory"));
        assert_eq!(b.config().get("absent"), None);
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert_eq!(Bundle::parse(b"nope").err(), Some(Error::BadMagic));
        let mut w = Writer::new();
        w.add("x", b"12345".to_vec());
        let bytes = w.to_bytes();
        for cut in 12..bytes.len() {
            assert!(matches!(Bundle::parse(&bytes[..cut]), Err(Error::Truncated { .. })), "cut {cut}");
        }
    }
}
