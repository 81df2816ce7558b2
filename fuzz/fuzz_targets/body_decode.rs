//! Request bodies as the API server decodes them (`crates/apiserver/src/rest.rs` `decode`): JSON with serde_json,
//! YAML with serde-saphyr into a `serde_json::Value`; and the answer written back as JSON and as YAML.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        let _ = serde_json::to_vec(&value);
        let _ = serde_saphyr::to_string(&value);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(value) = serde_saphyr::from_str::<Value>(text) {
            let _ = serde_json::to_vec(&value);
            let _ = serde_saphyr::to_string(&value);
        }
    }
});
