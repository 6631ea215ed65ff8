//! QEMU: the command line, running it interactively or captured with a
//! timeout, and turning how it ended into a [`Exit`].
//!
//! Serial ports: COM1 is the kernel log, COM2 the result channel
//! (`tests/src/protocol.rs`); the console-irq suite also types into COM1
//! through a Unix socket ([`spawn_captured_with`]). The `isa-debug-exit` device lets the kernel
//! end QEMU with a status; `-no-reboot` turns a triple fault into an exit
//! (status 0) instead of a silent reboot loop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmos_tests::protocol::Report;
use wasmos_tests::suites::Exit;

use crate::Accel;
use crate::prereq::OVMF;

pub struct Machine {
    pub image: PathBuf,
    pub uefi: bool,
    pub smp: u32,
    pub mem: String,
    pub accel: Accel,
    /// A virtio-net card on QEMU's user-mode network, forwarding this host
    /// port (on 127.0.0.1) to the guest's web server port; `None`: no card.
    pub http_port: Option<u16>,
    /// Offer RDTSCP to the guest (the bench mode's timing needs it;
    /// QEMU's default `qemu64` model lacks it, TCG emulates it).
    pub rdtscp: bool,
    /// A raw disk image attached as a virtio-blk disk.
    pub disk: Option<PathBuf>,
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Fails with a plain message if `port` on 127.0.0.1 is taken (QEMU's own
/// message for it is cryptic); `hint` says how to pick another.
pub fn ensure_port_free(port: u16, hint: &str) -> Result<()> {
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        anyhow::bail!("port {port} on 127.0.0.1 is in use: {hint}");
    }
    Ok(())
}

/// The port webapi listens on inside the machine.
pub const GUEST_HTTP_PORT: u16 = 8080;

impl Machine {
    /// QEMU with everything but the serial ports.
    fn command(&self) -> Command {
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(["-M", "q35", "-display", "none", "-no-reboot"]);
        match self.accel {
            // Multi-threaded TCG: one host thread per virtual CPU.
            Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", self.cpu()]),
            Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", self.cpu()]),
        };
        cmd.arg("-smp").arg(self.smp.to_string());
        cmd.arg("-m").arg(&self.mem);
        cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        if self.uefi {
            cmd.args(["-bios", OVMF]);
        }
        match self.http_port {
            Some(port) => {
                cmd.arg("-netdev").arg(format!("user,id=net0,hostfwd=tcp:127.0.0.1:{port}-:{GUEST_HTTP_PORT}"));
                cmd.args(["-device", "virtio-net-pci,netdev=net0"]);
                // Debugging aid: WASMOS_PCAP=file records every frame.
                if let Some(pcap) = std::env::var_os("WASMOS_PCAP") {
                    cmd.arg("-object").arg(format!("filter-dump,id=dump0,netdev=net0,file={}", pcap.to_string_lossy()));
                }
            }
            // q35 would otherwise add an e1000e card of its own.
            None => drop(cmd.args(["-nic", "none"])),
        }
        cmd.arg("-drive").arg(format!("format=raw,file={}", self.image.display()));
        if let Some(disk) = &self.disk {
            cmd.arg("-drive").arg(format!("format=raw,if=none,id=disk0,file={}", disk.display()));
            cmd.args(["-device", "virtio-blk-pci,drive=disk0"]);
        }
        cmd
    }

    /// The `-cpu` model.
    pub fn cpu(&self) -> &'static str {
        match (self.accel, self.rdtscp) {
            (Accel::Kvm, _) => "host",
            (Accel::Tcg, true) => "qemu64,+rdtscp",
            (Accel::Tcg, false) => "qemu64",
        }
    }

    pub fn describe(&self) -> String {
        let net = match self.http_port {
            Some(port) => format!(", virtio-net with http://127.0.0.1:{port}/ -> guest port {GUEST_HTTP_PORT}"),
            None => String::new(),
        };
        format!(
            "{} boot, -smp {}, -m {}, {}{net}",
            if self.uefi { "UEFI" } else { "BIOS" },
            self.smp,
            self.mem,
            match self.accel {
                Accel::Tcg => "TCG",
                Accel::Kvm => "KVM",
            }
        )
    }
}

fn classify(status: std::process::ExitStatus) -> Exit {
    match status.code() {
        Some(code) => Exit::Status(code),
        None => Exit::Signal,
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots with COM1 on this terminal (Ctrl-A X quits) and COM2 in
/// `dir/results.txt`; returns the status for xtask to exit with: that of
/// the programs the kernel waited for (`exit_with=`), else 0.
pub fn run_interactive(dir: &Path, machine: &Machine, timeout: Option<u64>, waits_for_programs: bool) -> Result<i32> {
    let results = dir.join("results.txt");
    let mut cmd = machine.command();
    cmd.args(["-serial", "mon:stdio"]).arg("-serial").arg(format!("file:{}", results.display()));
    eprintln!("xtask: booting WasmOS ({}); Ctrl-A X quits", machine.describe());
    let mut child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if timeout.is_some_and(|t| start.elapsed() >= Duration::from_secs(t)) {
            kill(&mut child);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let report = std::fs::read(&results).map(|b| Report::parse(&String::from_utf8_lossy(&b))).unwrap_or_default();
    let Some(exit) = status.map(classify) else {
        let secs = timeout.unwrap_or(0);
        eprintln!("\nxtask: stopped QEMU after {secs} s (--timeout)");
        return timed_out(secs, &report, waits_for_programs);
    };
    exit_status(exit, &report)
}

/// The status of a run stopped by `--timeout`: 0 only if the kernel
/// started (its first line on the result channel) and, with `--exit`,
/// only if the programs' status came.
pub fn timed_out(secs: u64, report: &Report, waits_for_programs: bool) -> Result<i32> {
    if report.header_version.is_none() {
        anyhow::bail!(
            "the kernel never started within {secs} s (nothing on its result channel): the firmware or the \
             bootloader did not reach it"
        );
    }
    if waits_for_programs && report.program_exit.is_none() {
        anyhow::bail!("the --wasm programs had not ended after {secs} s (--exit waits for them)");
    }
    Ok(0)
}

/// How a run-mode boot ended, as a process exit status: the programs'
/// status (`program-exit` on the result channel), 0 for a plain end.
pub fn exit_status(exit: Exit, report: &Report) -> Result<i32> {
    match exit {
        Exit::Status(wasmos_tests::suites::EXIT_SUCCESS) => Ok(report.program_exit.unwrap_or(0)),
        Exit::Status(0) => Ok(0),
        Exit::Status(wasmos_tests::suites::EXIT_FAILURE) => anyhow::bail!("the kernel reported a failure"),
        other => anyhow::bail!("QEMU ended unexpectedly: {other:?}"),
    }
}

/// Starts QEMU with both serial ports in files under `dir` and returns at
/// once; the caller ends it (see [`Running`]).
pub fn spawn_captured(machine: &Machine, dir: &Path) -> Result<(Child, Captured)> {
    spawn_captured_with(machine, dir, None)
}

/// [`spawn_captured`], and with `console`, COM1 is also a Unix socket
/// (QEMU listens on that path) whose bytes the guest receives as console
/// input; COM1's output still goes to the log file (the chardev's
/// `logfile`), and to the socket while a client is connected.
pub fn spawn_captured_with(machine: &Machine, dir: &Path, console: Option<&Path>) -> Result<(Child, Captured)> {
    std::fs::create_dir_all(dir)?;
    let files = Captured { log: dir.join("serial.log"), results: dir.join("results.txt") };
    for f in [&files.log, &files.results] {
        let _ = std::fs::remove_file(f);
    }
    let mut cmd = machine.command();
    match console {
        Some(socket) => {
            let _ = std::fs::remove_file(socket);
            cmd.arg("-chardev").arg(format!(
                "socket,id=com1,path={},server=on,wait=off,logfile={}",
                socket.display(),
                files.log.display()
            ));
            cmd.args(["-serial", "chardev:com1"]);
        }
        None => drop(cmd.arg("-serial").arg(format!("file:{}", files.log.display()))),
    }
    cmd.arg("-serial").arg(format!("file:{}", files.results.display()));
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cmd.spawn().context("cannot start qemu-system-x86_64")?;
    Ok((child, files))
}

/// A machine that keeps running (mode `run`) while the host talks to it;
/// killed when dropped.
pub struct Running {
    child: Child,
    pub files: Captured,
}

impl Running {
    pub fn start(machine: &Machine, dir: &Path) -> Result<Running> {
        let (child, files) = spawn_captured(machine, dir)?;
        Ok(Running { child, files })
    }

    /// Like [`Running::start`], with COM1's input on the Unix socket
    /// `console` ([`spawn_captured_with`]).
    pub fn start_with_console(machine: &Machine, dir: &Path, console: &Path) -> Result<Running> {
        let (child, files) = spawn_captured_with(machine, dir, Some(console))?;
        Ok(Running { child, files })
    }

    /// The kernel log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.files.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Waits until the log contains `text`; fails if QEMU ends or `timeout`
    /// passes first.
    pub fn wait_for(&mut self, text: &str, timeout: Duration) -> Result<()> {
        self.wait_for_count(text, 1, timeout)
    }

    /// Waits until the log contains `text` `count` times (one line per
    /// worker, per core...); fails if QEMU ends or `timeout` passes first.
    pub fn wait_for_count(&mut self, text: &str, count: usize, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            let seen = self.log().matches(text).count();
            if seen >= count {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("QEMU ended ({status}) when the log had said {text:?} {seen} of {count} times");
            }
            if start.elapsed() >= timeout {
                anyhow::bail!("the log said {text:?} {seen} of {count} times within {} s", timeout.as_secs());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether QEMU is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Files a captured run writes.
pub struct Captured {
    pub log: PathBuf,
    pub results: PathBuf,
}

/// Boots with both serial ports in files under `dir`, calling `progress`
/// with the result channel's text as it grows, until QEMU exits or
/// `timeout` passes.
pub fn run_captured(
    machine: &Machine,
    dir: &Path,
    timeout: Duration,
    mut progress: impl FnMut(&str),
) -> Result<(Exit, Captured)> {
    let (mut child, files) = spawn_captured(machine, dir)?;
    let start = Instant::now();
    let exit = loop {
        let done = child.try_wait()?;
        if let Ok(bytes) = std::fs::read(&files.results) {
            progress(&String::from_utf8_lossy(&bytes));
        }
        if let Some(status) = done {
            break classify(status);
        }
        if start.elapsed() >= timeout {
            kill(&mut child);
            break Exit::TimedOut { after_secs: timeout.as_secs() };
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    Ok((exit, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_a_success_only_when_the_kernel_ran() {
        // Nothing on the result channel: the boot never reached the kernel
        // (a BIOS boot hung in the bootloader).
        let err = timed_out(150, &Report::parse(""), false).unwrap_err().to_string();
        assert!(err.contains("never started within 150 s"), "{err}");
        let started = Report::parse("WASMOS-RESULTS 1\n");
        assert_eq!(timed_out(150, &started, false).unwrap(), 0);
        // With --exit, the programs must have ended.
        assert!(timed_out(150, &started, true).unwrap_err().to_string().contains("had not ended"));
        assert_eq!(timed_out(150, &Report::parse("WASMOS-RESULTS 1\nprogram-exit 3\n"), true).unwrap(), 0);
    }
}
