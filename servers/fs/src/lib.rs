//! fs: the file server, a WasmOS program.
//!
//! Keeps a FAT32 volume (any FAT, in fact: fatfs mounts FAT12/16/32) on a
//! block device and serves it to every task over the file protocol
//! (`wasmos_ipc::fs`, registered as `fs`). The block device is its handle
//! 1, a capability to the block service (`wasmos_ipc::block`) handed over
//! by whoever started it: the kernel (virtio-blk) or `wasmos-hosted` (a
//! disk image file). The same `fs.wasm` runs in both.
//!
//! - [`cache`]: the disk cache (4 KiB pages, written back only at a sync);
//! - [`disk`]: the cache as the `std::io` stream fatfs mounts;
//! - [`server`]: handles, paths and each op of the protocol.
//!
//! Why fatfs (0.3.6) and FAT32: ARCHITECTURE.md ("Storage"). It needs
//! `std::io`, which wasm32-unknown-unknown's std provides without any
//! import, so this program links std (and std's panic handler: a panic
//! traps the task, which its clients see as `DEAD_TARGET`).
//!
//! Arguments: `--crash-on-write-to NAME` (tests only: the starter decides,
//! no client can) makes the server trap half-way through the first `WRITE`
//! to a file named NAME, as a server killed mid-write would stop.

pub mod cache;
pub mod disk;
pub mod server;

/// Ends the task now with a trap (the test-only fault; a panic elsewhere).
pub fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    panic!("file server trapped (test fault)");
}

#[cfg(target_arch = "wasm32")]
mod program {
    use wasmos_ipc::abi::{Kind, MAX_PAYLOAD, Status};
    use wasmos_ipc::block::{self, BlockError, Info, Op, Request, SECTOR};
    use wasmos_ipc::fs::{FsError, SERVICE, SYNC_DELAY_NS};
    use wasmos_sdk::{self as os, Handle, println};

    use crate::cache::Blocks;
    use crate::server::Server;

    /// The block service, over IPC (handle 1).
    struct BlockClient {
        service: Handle,
        info: Info,
    }

    fn ipc(_: Status) -> FsError {
        FsError::Io
    }

    fn blk(_: BlockError) -> FsError {
        FsError::Io
    }

    impl BlockClient {
        fn connect(service: Handle) -> Result<BlockClient, FsError> {
            let mut msg = [0u8; block::HEADER];
            let n = Request { op: Op::Info, count: 0, lba: 0, data: &[] }.encode(&mut msg);
            let mut reply = [0u8; 64];
            let len = os::call(service, &msg[..n], &mut reply).map_err(ipc)?;
            let info = Info::decode(block::decode_result(&reply[..len]).map_err(blk)?).ok_or(FsError::Io)?;
            if info.sector_size != SECTOR as u32 || info.max_read < 8 || info.max_write < 4 {
                return Err(FsError::Io);
            }
            Ok(BlockClient { service, info })
        }

        fn simple(&mut self, req: Request<'_>) -> Result<(), FsError> {
            let mut msg = [0u8; MAX_PAYLOAD];
            let n = req.encode(&mut msg);
            let mut reply = [0u8; 4];
            let len = os::call(self.service, &msg[..n], &mut reply).map_err(ipc)?;
            block::decode_result(&reply[..len]).map(drop).map_err(blk)
        }
    }

    impl Blocks for BlockClient {
        fn sectors(&self) -> u64 {
            self.info.sectors
        }
        fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), FsError> {
            let count = (buf.len() / SECTOR) as u32;
            let mut msg = [0u8; block::HEADER];
            let n = Request { op: Op::Read, count, lba, data: &[] }.encode(&mut msg);
            let mut reply = [0u8; MAX_PAYLOAD];
            let len = os::call(self.service, &msg[..n], &mut reply).map_err(ipc)?;
            buf.copy_from_slice(block::decode_read_reply(&reply[..len], count).map_err(blk)?);
            Ok(())
        }
        fn write(&mut self, lba: u64, data: &[u8]) -> Result<(), FsError> {
            self.simple(Request { op: Op::Write, count: (data.len() / SECTOR) as u32, lba, data })
        }
        fn flush(&mut self) -> Result<(), FsError> {
            self.simple(Request { op: Op::Flush, count: 0, lba: 0, data: &[] })
        }
    }

    fn arg(name: &str) -> Option<String> {
        let mut store = [0u8; os::env::MAX_BYTES];
        let mut args = [""; os::env::MAX_ARGS];
        let n = os::env::args(&mut store, &mut args);
        os::env::flag(&args[..n], name).map(str::to_owned)
    }

    pub fn main() {
        std::panic::set_hook(Box::new(|info| println!("fs: panic: {info}")));
        let crash = arg("crash-on-write-to");
        let device = match BlockClient::connect(Handle(1)) {
            Ok(d) => d,
            Err(e) => {
                println!("fs: no block device at handle 1 ({}); serving NO_DISK", e.name());
                return serve(None);
            }
        };
        let mib = (device.info.sectors * SECTOR as u64) >> 20;
        let (mut server, mounted) = Server::new(device);
        match mounted {
            Ok(()) => {
                let fat = server.fat_type().expect("mounted");
                println!("fs: mounted a {fat:?} volume ({mib} MiB); serving \"{SERVICE}\"")
            }
            Err(why) => println!("fs: the disk ({mib} MiB) holds no FAT volume ({why}); serving NO_DISK"),
        }
        if let Some(name) = crash {
            println!("fs: test fault armed: trap during the first write to {name}");
            server.crash_on_write_to(&name);
        }
        serve(Some(server))
    }

    /// Registers `fs` and answers calls forever; syncs `SYNC_DELAY_NS`
    /// after the first unsynced change.
    fn serve(mut server: Option<Server<BlockClient>>) {
        if let Err(e) = os::register(SERVICE, None) {
            println!("fs: cannot register \"{SERVICE}\": {}", e.name());
            os::exit(1);
        }
        let mut buf = vec![0u8; MAX_PAYLOAD];
        let mut sync_at: Option<u64> = None;
        loop {
            let timeout = sync_at.map(|t| t.saturating_sub(os::now_ns()));
            match os::recv(None, &mut buf, timeout) {
                Ok((info, len)) if info.kind == Kind::Call as u32 => {
                    let reply = match server.as_mut() {
                        Some(s) => s.handle(info.bits, &buf[..len]),
                        None => FsError::NoDisk.code().to_le_bytes().to_vec(),
                    };
                    // A caller that died meanwhile is no concern of ours.
                    let _ = os::reply(info.reply_token, &reply);
                }
                Ok(_) => {}
                Err(Status::TimedOut) => {
                    if let Some(Err(e)) = server.as_mut().map(|s| s.sync()) {
                        println!("fs: sync failed: {}", e.name());
                    }
                }
                Err(e) => println!("fs: receive failed: {}", e.name()),
            }
            let unsynced = server.as_ref().is_some_and(|s| s.unsynced());
            sync_at = match (unsynced, sync_at) {
                (false, _) => None,
                (true, Some(t)) => Some(t),
                (true, None) => Some(os::now_ns() + SYNC_DELAY_NS),
            };
        }
    }
}

#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    program::main()
}

#[cfg(test)]
mod tests;
