//! Topic names and filters from arbitrary bytes: validation never panics, a valid
//! filter keeps the invariants its accessors promise, and matching agrees with
//! `topic::matches` and with a reference matcher written here from MQTT 5.0 §4.7.
//!
//! Input layout: the filter, a 0xFF byte (which UTF-8 never contains), the name.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_proto::topic::{self, TopicFilter, TopicName};
use starling_proto::MqttString;

fuzz_target!(|data: &[u8]| {
    let (filter, name) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let filter = MqttString::from_bytes(Bytes::copy_from_slice(filter))
        .ok()
        .and_then(|s| TopicFilter::new(s).ok());
    let name = MqttString::from_bytes(Bytes::copy_from_slice(name))
        .ok()
        .and_then(|s| TopicName::new(s).ok());
    if let Some(filter) = &filter {
        check_filter(filter);
    }
    if let Some(name) = &name {
        assert!(!name.as_str().is_empty());
        assert!(!name.as_str().contains(['+', '#']));
        assert_eq!(name.is_system(), name.as_str().starts_with('$'));
    }
    let (Some(filter), Some(name)) = (filter, name) else {
        return;
    };
    let inner = match filter.share() {
        Some(shared) => shared.filter().as_str().to_owned(),
        None => filter.as_str().to_owned(),
    };
    let matched = filter.matches(&name);
    assert_eq!(matched, topic::matches(&inner, name.as_str()));
    assert_eq!(
        matched,
        reference_matches(&inner, name.as_str()),
        "filter {filter:?} name {name:?}"
    );
    if !filter.has_wildcards() {
        assert_eq!(matched, inner == name.as_str());
    }
});

fn check_filter(filter: &TopicFilter) {
    let s = filter.as_str();
    assert!(!s.is_empty());
    assert_eq!(filter.has_wildcards(), s.contains(['+', '#']));
    assert_eq!(filter.is_shared(), s.starts_with("$share/"));
    match filter.share() {
        Some(shared) => {
            let group = shared.group().as_str();
            let inner = shared.filter();
            assert!(!group.is_empty() && !group.contains(['/', '+', '#']));
            assert!(!inner.is_shared() && !inner.as_str().is_empty());
            assert_eq!(format!("$share/{group}/{}", inner.as_str()), s);
            // The inner filter is itself valid on its own.
            TopicFilter::new(inner.as_mqtt_string().clone()).expect("inner filter is valid");
        }
        None => assert!(!filter.is_shared()),
    }
    for level in filter.levels() {
        if level.contains(['+', '#']) {
            assert!(level == "+" || level == "#", "level {level:?} of {s:?}");
        }
    }
}

/// §4.7, level by level and recursive: `#` takes its parent level and everything
/// below, `+` exactly one level, and neither matches a `$` name from the first level.
fn reference_matches(filter: &str, name: &str) -> bool {
    fn walk(filter: &[&str], name: &[&str]) -> bool {
        match (filter, name) {
            (["#"], _) => true,
            (["+", f @ ..], [_, n @ ..]) => walk(f, n),
            ([want, f @ ..], [got, n @ ..]) => want == got && walk(f, n),
            ([], []) => true,
            _ => false,
        }
    }
    let filter: Vec<&str> = filter.split('/').collect();
    let name: Vec<&str> = name.split('/').collect();
    if name[0].starts_with('$') && (filter[0] == "+" || filter[0] == "#") {
        return false;
    }
    walk(&filter, &name)
}
