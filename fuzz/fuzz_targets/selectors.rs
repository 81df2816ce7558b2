//! `LabelSelector::parse` and `FieldSelector::parse`, and matching. Input (UTF-8): the selector on the first line,
//! then `key=value` lines: the labels (and fields) of the object to match.
#![no_main]

use std::collections::BTreeMap;

use apimachinery::selector::{FieldSelector, LabelSelector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (selector, object) = text.split_once('\n').unwrap_or((text, ""));
    let labels: BTreeMap<String, String> = object
        .lines()
        .map(|line| line.split_once('=').unwrap_or((line, "")))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if let Ok(parsed) = LabelSelector::parse(selector) {
        let _ = parsed.matches(&labels);
    }
    if let Ok(parsed) = FieldSelector::parse(selector) {
        let _ = parsed.required_value("metadata.name");
        let _ = parsed.matches(|field| labels.get(field).cloned());
    }
});
