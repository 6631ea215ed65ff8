#![no_std]
#![no_main]
bootloader_api::entry_point!(kmain);
fn kmain(_: &'static mut bootloader_api::BootInfo) -> ! { loop { x86_64::instructions::hlt(); } }
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! { loop {} }
