//! `wasmos-image-builder <kernel.elf> <bundle> [--bios out.img] [--uefi out.img]`
//!
//! Writes BIOS and/or UEFI disk images that boot `kernel.elf` with
//! `bundle` as its ramdisk. Called by xtask; kept tiny on purpose.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(kernel), Some(bundle)) = (args.next().map(PathBuf::from), args.next().map(PathBuf::from)) else {
        eprintln!("usage: wasmos-image-builder <kernel.elf> <bundle> [--bios out.img] [--uefi out.img]");
        return ExitCode::from(2);
    };
    let mut bios = None;
    let mut uefi = None;
    while let Some(flag) = args.next() {
        let out = args.next().map(PathBuf::from);
        match (flag.to_str(), out) {
            (Some("--bios"), Some(out)) => bios = Some(out),
            (Some("--uefi"), Some(out)) => uefi = Some(out),
            _ => {
                eprintln!("unknown or incomplete option {flag:?}");
                return ExitCode::from(2);
            }
        }
    }
    // The bootloader's own log would bury the kernel's first lines; keep
    // its warnings and errors only.
    let mut config = bootloader::BootConfig::default();
    config.log_level = bootloader_boot_config::LevelFilter::Warn;
    config.frame_buffer_logging = false;
    if let Some(out) = bios {
        let mut boot = bootloader::BiosBoot::new(&kernel);
        boot.set_ramdisk(&bundle).set_boot_config(&config);
        if let Err(e) = boot.create_disk_image(&out) {
            eprintln!("cannot write BIOS image {}: {e:#}", out.display());
            return ExitCode::FAILURE;
        }
    }
    if let Some(out) = uefi {
        let mut boot = bootloader::UefiBoot::new(&kernel);
        boot.set_ramdisk(&bundle).set_boot_config(&config);
        if let Err(e) = boot.create_disk_image(&out) {
            eprintln!("cannot write UEFI image {}: {e:#}", out.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
