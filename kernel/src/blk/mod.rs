//! Storage: the virtio-blk disk as a block service, and the file server
//! on top of it.
//!
//! - the **block service** (`wasmos-block`'s `BlockService` over
//!   [`VirtioDisk`]): owns the disk and speaks the block protocol
//!   (`ipc/src/block.rs`). It has no name in the name service: the only
//!   capability to it is the one handed to the file server at spawn, so no
//!   other task can touch raw sectors.
//! - the **file server** (`fs.wasm` from the boot bundle, `servers/fs`): a
//!   Wasm task that keeps a FAT32 volume on the disk and registers `fs`.
//!
//! The disk needs no interrupt, unlike the network card (`net`): a
//! request is queued and its completion polled right away (virtio-drivers'
//! synchronous path), which under QEMU takes microseconds, so no timer
//! tick is ever in its way. An interrupt would pay only once requests are
//! left in flight while the core runs tasks; then its MSI-X route is the
//! network card's (`virtio::msix::route`, a vector of its own). Where the
//! block service would change: see `wasmos-block`'s crate documentation.

use alloc::boxed::Box;

use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::DeviceType;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use wasmos_block::{BlockService, Disk};
use wasmos_ipc::abi::Status;
use wasmos_ipc::block::{BlockError, SECTOR};
use wasmos_ipc::ids::TaskId;
use wasmos_sched::System;

use crate::virtio::KernelHal;

/// The core the block service runs on (and the file server, so that each
/// block request is a same-core call).
pub const BLK_CORE: usize = 0;

/// The file server's entry in the boot bundle.
pub const FS_WASM: &str = "fs.wasm";

/// What [`start`] found.
pub struct BlkInfo {
    pub sectors: u64,
    pub read_only: bool,
    pub pci: DeviceFunction,
    /// The block service's task id (to hand to the file server).
    pub service: TaskId,
}

/// The virtio-blk disk.
pub struct VirtioDisk {
    driver: VirtIOBlk<KernelHal, PciTransport>,
}

// SAFETY: the driver holds raw pointers to its registers and queue, which
// makes it !Send. It is created on the BSP and then moved once, to the core
// that runs the block service, and used only there.
unsafe impl Send for VirtioDisk {}

fn io(e: virtio_drivers::Error) -> BlockError {
    log::warn!("virtio-blk: {e:?}");
    BlockError::Io
}

impl Disk for VirtioDisk {
    fn sectors(&self) -> u64 {
        self.driver.capacity()
    }
    fn read_only(&self) -> bool {
        self.driver.readonly()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        debug_assert!(buf.len().is_multiple_of(SECTOR));
        self.driver.read_blocks(lba as usize, buf).map_err(io)
    }
    fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), BlockError> {
        self.driver.write_blocks(lba as usize, data).map_err(io)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.driver.flush().map_err(io)
    }
}

/// Looks for a virtio-blk disk on PCI bus 0 and, if there is one, starts
/// the block service on it. `None` (logged) when there is none.
pub fn start(sys: &System) -> Option<BlkInfo> {
    let (transport, df) = crate::virtio::find(DeviceType::Block, "blk: virtio-blk")?;
    let mut driver = match VirtIOBlk::<KernelHal, _>::new(transport) {
        Ok(d) => d,
        Err(e) => {
            log::error!("blk: virtio-blk at {df} failed to start: {e:?}");
            return None;
        }
    };
    // Synchronous (see above): the device need not interrupt.
    driver.disable_interrupts();
    let (sectors, read_only) = (driver.capacity(), driver.readonly());
    match sys.start_native_unnamed(BLK_CORE, Box::new(BlockService::new(VirtioDisk { driver }))) {
        Ok(service) => Some(BlkInfo { sectors, read_only, pci: df, service }),
        Err(e) => {
            log::error!("blk: cannot start the block service: {}", e.name());
            None
        }
    }
}

/// Starts the file server from the bundle's `fs.wasm` with the one
/// capability to the block service (its handle 1); `args` follow its name.
pub fn start_file_server(sys: &System, wasm: &[u8], blk: TaskId, args: &[&str]) -> Result<TaskId, Status> {
    let mut argv = alloc::vec!["fs"];
    argv.extend_from_slice(args);
    sys.spawn_with_caps(wasm, &argv, BLK_CORE as i32, &[blk])
}
