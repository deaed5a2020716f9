//! Fuzzes the configuration loader: arbitrary bytes through YAML parsing, decoding in both dialects, Kuma's
//! validation and the extra checks. Nothing may panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshgate_api::decode::UnknownFields;
use meshgate_api::load::{ResourceSet, decode_text};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let outcome = decode_text(std::path::Path::new("fuzz.yaml"), text, UnknownFields::Deny);
    for p in &outcome.problems {
        let _ = p.to_string();
    }
    let _ = ResourceSet::new(&outcome.loaded).check_with(false);
});
