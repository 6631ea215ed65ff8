//! `cargo xtask soak`: boots the kernel in soak mode (a mixed workload on
//! every core for a set time) and judges its report with
//! `wasmos_tests::soak`: messages sent = counted, tasks spawned = reaped,
//! memory flat after the first round. Meanwhile HTTP clients on the host
//! keep calling webapi inside the machine (through virtio-net): every
//! request must be answered.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use wasmos_tests::suites::{Check, Exit};

use crate::build::{self, BootConfig, Profile};
use crate::qemu::{self, Machine};
use crate::{Accel, Mode};

/// HTTP clients on the host during a soak.
const HTTP_CLIENTS: usize = 2;

/// Runs a soak of `seconds` on `smp` cores and returns its checks.
pub fn run(root: &Path, seconds: u64, smp: u32) -> Result<Vec<Check>> {
    let port = qemu::free_port()?;
    let config = BootConfig {
        soak_seconds: Some(seconds),
        hostfwd: Some((port, qemu::GUEST_HTTP_PORT)),
        ..BootConfig::mode(Mode::Soak)
    };
    let image = build::image_named(root, "soak", Profile::Release, false, &config)?;
    let machine = Machine {
        image,
        uefi: false,
        smp,
        mem: "512M".into(),
        accel: Accel::Tcg,
        http_port: Some(port),
        rdtscp: false,
        disk: None,
    };
    let clients = wasmos_tests::http::Clients::start(std::net::SocketAddr::from(([127, 0, 0, 1], port)), HTTP_CLIENTS);
    println!("==> soak for {seconds} s ({})", machine.describe());
    let dir = build::out_dir(root).join("soak");
    let mut shown = 0;
    let timeout = Duration::from_secs(seconds + 300);
    let stop_clients = clients.stop_flag();
    let (exit, files) = qemu::run_captured(&machine, &dir, timeout, |text| {
        if text.contains("soak-result") {
            stop_clients.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        for line in text.lines().filter(|l| l.starts_with("soak-progress")).skip(shown) {
            println!("  {line}");
            shown += 1;
        }
    })?;
    let text = String::from_utf8_lossy(&std::fs::read(&files.results).unwrap_or_default()).into_owned();
    if let Some(line) = text.lines().find(|l| l.starts_with("soak-result")) {
        println!("  {line}");
    }
    let mut checks = wasmos_tests::soak::checks("soak", wasmos_tests::soak::parse(&text).as_ref());
    let failure = text.lines().find_map(|l| l.strip_prefix("soak-fail ")).map(str::to_owned);
    let clean = match (exit, failure) {
        (_, Some(why)) => Err(format!("workload failed: {why}")),
        (Exit::Status(wasmos_tests::suites::EXIT_SUCCESS), None) => Ok(None),
        (other, None) => Err(wasmos_tests::suites::describe_end(&wasmos_tests::protocol::Report::parse(&text), other)),
    };
    checks.push(Check { name: "soak::clean_exit".into(), result: clean });
    let http = clients.stop();
    println!("  http: {} requests answered, {} failed, while the soak ran", http.ok, http.failed.len());
    let result = if http.ok == 0 {
        Err("no HTTP request was answered".to_owned())
    } else if let Some(first) = http.failed.first() {
        Err(format!("{} of {} requests failed; first: {first}", http.failed.len(), http.ok + http.failed.len() as u64))
    } else {
        Ok(None)
    };
    checks.push(Check { name: "soak::http_clients_all_answered".into(), result });
    Ok(checks)
}
