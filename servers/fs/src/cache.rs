//! The disk cache: 4 KiB pages of the block device, read on first use and
//! written back only at a sync ([`Cache::write_back`]).
//!
//! That is what makes the file server's crash guarantee simple: between
//! syncs nothing reaches the disk, so a crash leaves the volume exactly as
//! the last sync left it. Clean pages are dropped (least recently used)
//! when [`MAX_CLEAN`] are held; dirty pages stay until the next sync, and
//! the server syncs by itself once [`MAX_DIRTY`] are dirty, so the cache is
//! bounded (at most `(MAX_CLEAN + MAX_DIRTY) × 4 KiB` plus what one request
//! dirties).

use std::collections::BTreeMap;

use wasmos_ipc::block::SECTOR;
use wasmos_ipc::fs::FsError;

/// Bytes per page.
pub const PAGE: usize = 4096;
const PAGE_SECTORS: u64 = (PAGE / SECTOR) as u64;
/// Clean pages kept.
pub const MAX_CLEAN: usize = 512;
/// Dirty pages before the server syncs on its own.
pub const MAX_DIRTY: usize = 512;
/// Sectors per write request (the block protocol takes at most 7).
const WRITE_CHUNK: usize = 4;

/// What the cache reads from and writes to: the block service (over IPC)
/// in the file server, memory in tests.
pub trait Blocks {
    fn sectors(&self) -> u64;
    /// Reads `buf.len() / 512` (at most 8) sectors at `lba`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError>;
    /// Writes `data.len() / 512` (at most 7) sectors at `lba`.
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), FsError>;
    fn flush(&mut self) -> Result<(), FsError>;
}

struct Page {
    data: Box<[u8; PAGE]>,
    dirty: bool,
    used: u64,
}

/// The pieces of a byte range `offset..offset + len`, page by page:
/// (page, offset in the page, offset in the range, length).
fn spans(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let mut done = 0;
    core::iter::from_fn(move || {
        if done >= len {
            return None;
        }
        let at = offset + done as u64;
        let (n, within) = (at / PAGE as u64, (at % PAGE as u64) as usize);
        let take = (PAGE - within).min(len - done);
        let span = (n, within, done, take);
        done += take;
        Some(span)
    })
}

pub struct Cache<B: Blocks> {
    dev: B,
    pages: BTreeMap<u64, Page>,
    clock: u64,
    dirty: usize,
    /// Bytes of the device (not always a whole number of pages).
    size: u64,
}

impl<B: Blocks> Cache<B> {
    pub fn new(dev: B) -> Cache<B> {
        let size = dev.sectors() * SECTOR as u64;
        Cache { dev, pages: BTreeMap::new(), clock: 0, dirty: 0, size }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn dirty_pages(&self) -> usize {
        self.dirty
    }

    pub fn device(&mut self) -> &mut B {
        &mut self.dev
    }

    /// Sectors of page `n` that exist on the device.
    fn page_sectors(&self, n: u64) -> usize {
        let total = self.size / SECTOR as u64;
        total.saturating_sub(n * PAGE_SECTORS).min(PAGE_SECTORS) as usize
    }

    fn page(&mut self, n: u64) -> Result<&mut Page, FsError> {
        self.clock += 1;
        let clock = self.clock;
        if !self.pages.contains_key(&n) {
            let clean = self.pages.len() - self.dirty;
            if clean >= MAX_CLEAN {
                let oldest = self.pages.iter().filter(|(_, p)| !p.dirty).min_by_key(|(_, p)| p.used).map(|(&k, _)| k);
                if let Some(k) = oldest {
                    self.pages.remove(&k);
                }
            }
            let mut data = Box::new([0u8; PAGE]);
            let sectors = self.page_sectors(n);
            self.dev.read(n * PAGE_SECTORS, &mut data[..sectors * SECTOR])?;
            self.pages.insert(n, Page { data, dirty: false, used: clock });
        }
        let page = self.pages.get_mut(&n).expect("just inserted");
        page.used = clock;
        Ok(page)
    }

    /// Reads `buf.len()` bytes at byte `offset` (which must lie on the disk).
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FsError> {
        for (n, within, done, take) in spans(offset, buf.len()) {
            let page = self.page(n)?;
            buf[done..done + take].copy_from_slice(&page.data[within..within + take]);
        }
        Ok(())
    }

    /// Writes `data` at byte `offset` into the cache (not the disk).
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), FsError> {
        for (n, within, done, take) in spans(offset, data.len()) {
            let page = self.page(n)?;
            page.data[within..within + take].copy_from_slice(&data[done..done + take]);
            if !page.dirty {
                page.dirty = true;
                self.dirty += 1;
            }
        }
        Ok(())
    }

    /// Writes one dirty page to the device and marks it clean.
    fn write_page(&mut self, n: u64) -> Result<(), FsError> {
        let sectors = self.page_sectors(n);
        let Some(page) = self.pages.get(&n).filter(|p| p.dirty) else { return Ok(()) };
        let data = page.data.clone();
        for (i, chunk) in data[..sectors * SECTOR].chunks(WRITE_CHUNK * SECTOR).enumerate() {
            self.dev.write(n * PAGE_SECTORS + (i * WRITE_CHUNK) as u64, chunk)?;
        }
        self.pages.get_mut(&n).expect("present").dirty = false;
        self.dirty -= 1;
        Ok(())
    }

    /// Writes every dirty page but those in `last` (in disk order), then a
    /// block `FLUSH`.
    pub fn write_back_except(&mut self, last: &[u64]) -> Result<(), FsError> {
        let dirty: Vec<u64> =
            self.pages.iter().filter(|(k, p)| p.dirty && !last.contains(k)).map(|(&k, _)| k).collect();
        for n in dirty {
            self.write_page(n)?;
        }
        self.dev.flush()
    }

    /// Writes every dirty page, then a block `FLUSH`.
    pub fn write_back(&mut self) -> Result<(), FsError> {
        self.write_back_except(&[])
    }

    /// Writes `data` (whole sectors) straight to the device at `lba`,
    /// bypassing the cache (whose copy is left as it is), then flushes.
    pub fn write_through(&mut self, lba: u64, data: &[u8]) -> Result<(), FsError> {
        self.dev.write(lba, data)?;
        self.dev.flush()
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A disk in memory that counts what reached it.
    pub struct Mem {
        pub bytes: Vec<u8>,
        pub writes: usize,
        pub flushes: usize,
    }

    impl Mem {
        pub fn new(bytes: usize) -> Mem {
            Mem { bytes: vec![0; bytes], writes: 0, flushes: 0 }
        }
    }

    impl Blocks for Mem {
        fn sectors(&self) -> u64 {
            (self.bytes.len() / SECTOR) as u64
        }
        fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
            assert!(buf.len() <= 8 * SECTOR);
            let at = lba as usize * SECTOR;
            buf.copy_from_slice(self.bytes.get(at..at + buf.len()).ok_or(FsError::Io)?);
            Ok(())
        }
        fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), FsError> {
            assert!(data.len() <= 7 * SECTOR && data.len().is_multiple_of(SECTOR));
            let at = lba as usize * SECTOR;
            self.bytes.get_mut(at..at + data.len()).ok_or(FsError::Io)?.copy_from_slice(data);
            self.writes += 1;
            Ok(())
        }
        fn flush(&mut self) -> Result<(), FsError> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn nothing_reaches_the_disk_before_write_back() {
        // 9 sectors: the last page has one sector only.
        let mut c = Cache::new(Mem::new(9 * SECTOR));
        c.write_at(100, b"hello").unwrap();
        c.write_at(8 * SECTOR as u64 + 1, b"tail").unwrap();
        let mut back = [0u8; 5];
        c.read_at(100, &mut back).unwrap();
        assert_eq!(&back, b"hello");
        assert_eq!(c.dev.writes, 0);
        assert_eq!(c.dirty_pages(), 2);
        c.write_back().unwrap();
        assert_eq!(c.dirty_pages(), 0);
        assert_eq!(&c.dev.bytes[100..105], b"hello");
        assert_eq!(&c.dev.bytes[8 * SECTOR + 1..8 * SECTOR + 5], b"tail");
        assert_eq!((c.dev.writes, c.dev.flushes), (3, 1), "a full page in two writes, the tail page in one");
    }

    #[test]
    fn clean_pages_are_bounded() {
        let mut c = Cache::new(Mem::new((MAX_CLEAN + 10) * PAGE));
        let mut b = [0u8; 1];
        for n in 0..MAX_CLEAN + 10 {
            c.read_at((n * PAGE) as u64, &mut b).unwrap();
        }
        assert_eq!(c.pages.len(), MAX_CLEAN);
    }
}
