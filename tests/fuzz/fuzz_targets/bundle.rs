//! The boot bundle reader on arbitrary bytes: parse errors, never panics;
//! a parsed bundle can be walked and queried.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = wasmos_bundle::Bundle::parse(data) {
        let n = bundle.iter().count();
        assert_eq!(n, bundle.len());
        for entry in bundle.iter() {
            assert!(bundle.get(entry.name).is_some());
        }
        let config = bundle.config();
        let _ = config.get("mode").and_then(wasmos_bundle::Mode::parse);
        let _ = config.get("spawn");
    }
});
