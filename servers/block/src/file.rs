//! [`FileDisk`]: a disk image file on the host as a [`Disk`], for the
//! hosted runtime (`wasmos-hosted --disk FILE`). Its size must be a whole
//! number of sectors.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use wasmos_ipc::block::{BlockError, SECTOR};

use crate::Disk;

pub struct FileDisk {
    file: File,
    sectors: u64,
    read_only: bool,
}

impl FileDisk {
    /// Opens `path` for reading and writing (or only reading).
    pub fn open(path: &Path, read_only: bool) -> std::io::Result<FileDisk> {
        let file = OpenOptions::new().read(true).write(!read_only).open(path)?;
        let len = file.metadata()?.len();
        if len % SECTOR as u64 != 0 || len == 0 {
            return Err(std::io::Error::other(format!(
                "{}: {len} bytes is not a whole number of sectors",
                path.display()
            )));
        }
        Ok(FileDisk { file, sectors: len / SECTOR as u64, read_only })
    }
}

fn io(_: std::io::Error) -> BlockError {
    BlockError::Io
}

impl Disk for FileDisk {
    fn sectors(&self) -> u64 {
        self.sectors
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        self.file.read_exact_at(buf, lba * SECTOR as u64).map_err(io)
    }
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BlockError> {
        self.file.write_all_at(data, lba * SECTOR as u64).map_err(io)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.file.sync_data().map_err(io)
    }
}
