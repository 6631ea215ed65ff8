//! The ring-3 programs of the native baseline: small hand-written
//! machine code, position-independent, copied into each task's code page
//! (no ELF loader needed). Each program finds its parameters in
//! callee-saved registers set by the kernel at start, keeps its state in
//! callee-saved registers (the system-call ABI preserves only those, see
//! `entry.rs`), and writes its timing samples as u64s to its data pages.
//!
//! Timing: `lfence; rdtsc` before the measured operation and
//! `rdtscp; lfence` after it, the usual fencing, so that neither read
//! drifts into the measured code. On a CPU without RDTSCP (QEMU's KVM
//! `-cpu host` on a nested hypervisor hides it) each `rdtscp` is patched
//! to `lfence; rdtsc` when the code is copied ([`code`]), the way Linux's
//! alternatives do it: every site is 5 bytes (`rdtscp; nop; nop`) and
//! listed in a table.
//!
//! | program | parameters | does |
//! |---|---|---|
//! | `client` | r12 = server, r13 = count, r15 = samples | times `call(server, i)` r13 times, then `call(server, STOP)` |
//! | `server` | - | `recv`; `reply(token, msg + 1)`; on STOP replies and exits |
//! | `null` | r12 = batch, r13 = count, r15 = samples | times r12 `null` system calls per sample |
//! | `clock` | r13 = count, r15 = samples | times nothing: the cost of the two TSC reads |
//! | `yield` | r13 = count, r15 = samples | times `yield` (a switch to the other task and back) |
//! | `producer` | r12 = consumer, r13 = count | `send(consumer, i)`; yields and retries on WOULD_BLOCK |
//! | `consumer` | r12 = batch, r13 = count, r15 = samples | `recv` r13 times; the TSC at its start and after every r12 messages |
//! | `nop` | - | exits at once (spawn time) |
//! | `crc32` | r12 = bytes, r13 = count, r15 = samples | builds the CRC-32 table and the buffer after the samples, times r13 passes of table-driven CRC-32 over r12 bytes, exits with the CRC |

use alloc::vec::Vec;
use core::arch::global_asm;

use super::scheduler::{SYS_CALL, SYS_EXIT, SYS_NULL, SYS_RECV, SYS_REPLY, SYS_SEND, SYS_YIELD};

// Samples go to the address the kernel passes in r15 (the task's data
// pages); every program starts with rbx = 0. The consumer advances r15
// as it stores.
global_asm!(
    r#"
    .pushsection .rodata.native_alt, "a"
    .balign 4
    .global wasmos_native_alt_start
wasmos_native_alt_start:
    .popsection

    .pushsection .rodata.native_user, "a"
    .balign 4096
    .global wasmos_native_user_start
wasmos_native_user_start:

    .macro TSC_BEGIN reg
        lfence
        rdtsc
        shl rdx, 32
        or rax, rdx
        mov \reg, rax
    .endm
    .macro RDTSCP_ALT
    .Lrdtscp_site\@:
        rdtscp
        nop
        nop
        .pushsection .rodata.native_alt, "a"
        .long .Lrdtscp_site\@ - wasmos_native_user_start
        .popsection
    .endm
    .macro TSC_END_SUB reg
        RDTSCP_ALT
        lfence
        shl rdx, 32
        or rax, rdx
        sub rax, \reg
    .endm

    .global wasmos_native_client
wasmos_native_client:
1:  TSC_BEGIN rbp
    mov eax, {call}
    mov rdi, r12
    mov rsi, rbx
    syscall
    TSC_END_SUB rbp
    mov [r15 + rbx * 8], rax
    inc rbx
    cmp rbx, r13
    jb 1b
    mov eax, {call}
    mov rdi, r12
    mov rsi, {stop}
    syscall
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_server
wasmos_native_server:
1:  mov eax, {recv}
    syscall
    mov rbx, rax
    mov rdi, rdx
    lea rsi, [rax + 1]
    cmp rbx, {stop}
    je 2f
    mov eax, {reply}
    syscall
    jmp 1b
2:  mov rsi, rbx
    mov eax, {reply}
    syscall
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_null
wasmos_native_null:
1:  TSC_BEGIN rbp
    mov r14, r12
2:  mov eax, {null}
    syscall
    dec r14
    jnz 2b
    TSC_END_SUB rbp
    mov [r15 + rbx * 8], rax
    inc rbx
    cmp rbx, r13
    jb 1b
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_clock
wasmos_native_clock:
1:  TSC_BEGIN rbp
    TSC_END_SUB rbp
    mov [r15 + rbx * 8], rax
    inc rbx
    cmp rbx, r13
    jb 1b
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_yield
wasmos_native_yield:
1:  TSC_BEGIN rbp
    mov eax, {yield_}
    syscall
    TSC_END_SUB rbp
    mov [r15 + rbx * 8], rax
    inc rbx
    cmp rbx, r13
    jb 1b
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_producer
wasmos_native_producer:
1:  mov eax, {send}
    mov rdi, r12
    mov rsi, rbx
    syscall
    test rax, rax
    jz 2f
    mov eax, {yield_}
    syscall
    jmp 1b
2:  inc rbx
    cmp rbx, r13
    jb 1b
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_consumer
wasmos_native_consumer:
    TSC_BEGIN rbp
    mov [r15], rbp
    add r15, 8
    xor r14d, r14d
1:  mov eax, {recv}
    syscall
    inc rbx
    inc r14
    cmp r14, r12
    jb 2f
    RDTSCP_ALT
    lfence
    shl rdx, 32
    or rax, rdx
    mov [r15], rax
    add r15, 8
    xor r14d, r14d
2:  cmp rbx, r13
    jb 1b
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    // CRC-32 as `bench/wasm/crc32.wat` computes it: the same table, the
    // same buffer (the top bytes of an LCG from 1), one table lookup per
    // byte. Table (1 KiB) at r14 = r15 + 8 * r13, right after the
    // samples; the buffer right after the table.
    .global wasmos_native_crc32
wasmos_native_crc32:
    lea r14, [r15 + r13 * 8]
    xor ecx, ecx
1:  mov eax, ecx
    mov edx, 8
2:  shr eax, 1
    jnc 3f
    xor eax, 0xEDB88320
3:  dec edx
    jnz 2b
    mov [r14 + rcx * 4], eax
    inc ecx
    cmp ecx, 256
    jb 1b
    lea rdi, [r14 + 1024]
    mov esi, 1
    xor ecx, ecx
4:  imul esi, esi, 1664525
    add esi, 1013904223
    mov eax, esi
    shr eax, 24
    mov [rdi + rcx], al
    inc rcx
    cmp rcx, r12
    jb 4b
5:  TSC_BEGIN rbp
    lea rdi, [r14 + 1024]
    mov r9d, 0xFFFFFFFF
    xor ecx, ecx
6:  movzx r8d, byte ptr [rdi + rcx]
    xor r8d, r9d
    movzx r8d, r8b
    shr r9d, 8
    xor r9d, [r14 + r8 * 4]
    inc rcx
    cmp rcx, r12
    jb 6b
    not r9d
    TSC_END_SUB rbp
    mov [r15 + rbx * 8], rax
    inc rbx
    cmp rbx, r13
    jb 5b
    mov eax, {exit}
    mov edi, r9d
    syscall
    ud2

    .global wasmos_native_nop
wasmos_native_nop:
    mov eax, {exit}
    xor edi, edi
    syscall
    ud2

    .global wasmos_native_user_end
wasmos_native_user_end:
    .purgem TSC_BEGIN
    .purgem TSC_END_SUB
    .purgem RDTSCP_ALT
    .popsection

    .pushsection .rodata.native_alt, "a"
    .global wasmos_native_alt_end
wasmos_native_alt_end:
    .popsection
    "#,
    call = const SYS_CALL,
    recv = const SYS_RECV,
    reply = const SYS_REPLY,
    send = const SYS_SEND,
    yield_ = const SYS_YIELD,
    null = const SYS_NULL,
    exit = const SYS_EXIT,
    stop = const -1i64,
);

/// A program of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Client,
    Server,
    Null,
    Clock,
    Yield,
    Producer,
    Consumer,
    Nop,
    Crc32,
}

unsafe extern "C" {
    static wasmos_native_alt_start: u32;
    static wasmos_native_alt_end: u32;
    static wasmos_native_user_start: u8;
    static wasmos_native_user_end: u8;
    static wasmos_native_client: u8;
    static wasmos_native_server: u8;
    static wasmos_native_null: u8;
    static wasmos_native_clock: u8;
    static wasmos_native_yield: u8;
    static wasmos_native_producer: u8;
    static wasmos_native_consumer: u8;
    static wasmos_native_nop: u8;
    static wasmos_native_crc32: u8;
}

fn assembled() -> &'static [u8] {
    let start = &raw const wasmos_native_user_start;
    let end = &raw const wasmos_native_user_end as usize;
    // SAFETY: both symbols delimit the assembled block above, in one
    // read-only section of the kernel image.
    unsafe { core::slice::from_raw_parts(start, end - start as usize) }
}

/// Offsets of the `rdtscp; nop; nop` sites in [`assembled`].
fn rdtscp_sites() -> &'static [u32] {
    let start = &raw const wasmos_native_alt_start;
    let end = &raw const wasmos_native_alt_end as usize;
    // SAFETY: the table of u32 offsets the RDTSCP_ALT macro emits,
    // between its two symbols in one read-only section.
    unsafe { core::slice::from_raw_parts(start, (end - start as usize) / 4) }
}

static CODE: spin::Once<Vec<u8>> = spin::Once::new();

/// The machine code of all programs, to be copied into a task's code
/// pages: with `rdtscp` where the CPU has it, `lfence; rdtsc` otherwise.
pub fn code() -> &'static [u8] {
    CODE.call_once(|| {
        let mut code = assembled().to_vec();
        if !crate::bench::has_rdtscp() {
            for &site in rdtscp_sites() {
                let site = site as usize;
                assert_eq!(code[site..site + 5], [0x0f, 0x01, 0xf9, 0x90, 0x90], "not an RDTSCP site");
                code[site..site + 5].copy_from_slice(&[0x0f, 0xae, 0xe8, 0x0f, 0x31]);
            }
        }
        code
    })
}

impl Program {
    /// Offset of the program's first instruction in [`code`].
    pub fn entry(self) -> u64 {
        let sym = match self {
            Program::Client => &raw const wasmos_native_client,
            Program::Server => &raw const wasmos_native_server,
            Program::Null => &raw const wasmos_native_null,
            Program::Clock => &raw const wasmos_native_clock,
            Program::Yield => &raw const wasmos_native_yield,
            Program::Producer => &raw const wasmos_native_producer,
            Program::Consumer => &raw const wasmos_native_consumer,
            Program::Nop => &raw const wasmos_native_nop,
            Program::Crc32 => &raw const wasmos_native_crc32,
        };
        sym as u64 - &raw const wasmos_native_user_start as u64
    }
}
