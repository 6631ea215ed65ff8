//! Token ring: one copy runs on every core. Copy k registers `ring<k>`,
//! finds copy k+1, and forwards every token it receives to it. Copy 0
//! starts the token and, after `LAPS` laps, prints the average time per
//! hop and sends a stop token around the ring. Every hop is one message
//! into another core's ring, plus an IPI when that core was asleep.

#![no_std]

use core::fmt::Write;
use wasmos_sdk::{self as os, LineBuffer, println, wire};

const LAPS: u32 = 1000;
const STOP: u32 = u32::MAX;

/// "ring<k>" without an allocator.
fn name(k: u32, line: &mut LineBuffer) -> &str {
    let _ = write!(line, "ring{k}");
    line.as_str()
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() {
    let me = os::core_id();
    let cores = os::core_count();
    let (mut mine, mut theirs) = (LineBuffer::new(), LineBuffer::new());
    os::register(name(me, &mut mine), None).expect("ring name taken");
    let next = os::lookup_wait(name((me + 1) % cores, &mut theirs));
    let started = os::now_ns();
    if me == 0 {
        wire::send(next, &0u32).expect("send");
    }
    loop {
        let (_, mut token) = wire::recv::<u32>(None, None).expect("recv");
        if token == STOP {
            if me != 0 {
                let _ = wire::send(next, &STOP);
            }
            return;
        }
        if me == 0 {
            token += 1;
            if token == LAPS {
                let hops = (LAPS * cores) as u64;
                let ns = (os::now_ns() - started) / hops;
                println!("token ring: {LAPS} laps over {cores} cores, {ns} ns per hop");
                token = STOP;
            }
        }
        // Sending into a full ring is back-pressure: retry.
        while wire::send(next, &token) == Err(os::Status::WouldBlock) {
            os::sleep_ns(10_000);
        }
    }
}
