//! The test harness's result-channel parser on arbitrary text.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let report = wasmos_tests::protocol::Report::parse(&String::from_utf8_lossy(data));
    assert_eq!(report.passed() + report.failed(), report.tests.len());
});
