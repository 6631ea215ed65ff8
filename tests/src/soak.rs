//! Judging a soak run: the `soak-result` line the kernel writes on the
//! result channel (`kernel/src/ktest/soak.rs`), checked for lost messages,
//! unreaped tasks and memory growth.

use std::collections::BTreeMap;

use crate::suites::Check;

/// Growth of the kernel heap's live bytes allowed between the warm point
/// (the end of the first round that ends at least 5 s in and after three
/// hostile rounds, once long-lived tasks, services and the queues the
/// floods fill are at their working sets) and the end: the soak's own tasks have
/// exited both times, so anything beyond allocator slack is a leak.
pub const HEAP_GROWTH_BOUND: u64 = 1 << 20;
/// Free frames that may be missing at the end compared to the warm round.
pub const FRAME_LOSS_BOUND: u64 = 2048;

/// The key=value pairs of the last `soak-result` line.
pub fn parse(text: &str) -> Option<BTreeMap<String, u64>> {
    let line = text.lines().rev().find_map(|l| l.strip_prefix("soak-result "))?;
    Some(
        line.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
            .collect(),
    )
}

/// The soak's checks, named `<prefix>::...`.
pub fn checks(prefix: &str, result: Option<&BTreeMap<String, u64>>) -> Vec<Check> {
    let name = |n: &str| format!("{prefix}::{n}");
    let Some(r) = result else {
        return vec![Check { name: name("report"), result: Err("no soak-result line".into()) }];
    };
    let get = |k: &str| r.get(k).copied().unwrap_or(u64::MAX);
    let check = |n: &str, ok: bool, why: String| Check { name: name(n), result: if ok { Ok(None) } else { Err(why) } };
    vec![
        check("ran_rounds", get("rounds") >= 1 && get("rounds") != u64::MAX, format!("rounds={}", get("rounds"))),
        check(
            "messages_sent_equal_delivered",
            get("sent") == get("delivered") && get("sent") != u64::MAX,
            format!("sent={} delivered={}", get("sent"), get("delivered")),
        ),
        check(
            "tasks_spawned_equal_reaped",
            get("spawned") == get("reaped") && get("live_tasks") == 0,
            format!("spawned={} reaped={} live={}", get("spawned"), get("reaped"), get("live_tasks")),
        ),
        check(
            "memory_flat",
            get("wasm_memory_end") <= r.get("wasm_memory_warm").copied().unwrap_or(0)
                && get("heap_end").saturating_sub(get("heap_warm")) <= HEAP_GROWTH_BOUND
                && get("frames_warm").saturating_sub(get("frames_end")) <= FRAME_LOSS_BOUND,
            format!(
                "wasm memory {} -> {}, heap {} -> {}, free frames {} -> {}",
                r.get("wasm_memory_warm").copied().unwrap_or(0),
                get("wasm_memory_end"),
                get("heap_warm"),
                get("heap_end"),
                get("frames_warm"),
                get("frames_end")
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "soak-start seconds=5 cores=2\nsoak-result rounds=3 sent=2400 delivered=2400 spawned=30 reaped=30 \
        live_tasks=0 heap_warm=1000 heap_end=1000 frames_warm=500 frames_end=500 wasm_memory_warm=65536 wasm_memory_end=65536\n";

    #[test]
    fn a_clean_soak_passes() {
        let r = parse(GOOD);
        assert!(checks("soak", r.as_ref()).iter().all(Check::passed));
    }

    #[test]
    fn lost_messages_leaks_and_missing_reports_fail() {
        let lost = parse(&GOOD.replace("delivered=2400", "delivered=2399"));
        assert!(!checks("s", lost.as_ref())[1].passed());
        let leak = parse(&GOOD.replace("reaped=30", "reaped=29"));
        assert!(!checks("s", leak.as_ref())[2].passed());
        let heap = parse(&GOOD.replace("heap_end=1000", "heap_end=99999999"));
        assert!(!checks("s", heap.as_ref())[3].passed());
        let wasm = parse(&GOOD.replace("wasm_memory_end=65536", "wasm_memory_end=131072"));
        assert!(!checks("s", wasm.as_ref())[3].passed(), "Wasm memory of the soak's own tasks left at the end");
        assert!(!checks("s", None)[0].passed());
    }
}
