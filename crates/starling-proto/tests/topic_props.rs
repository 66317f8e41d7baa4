//! Property tests for `starling_proto::topic`, checked against reference
//! implementations written here from the text of MQTT 5.0 §4.7 and §4.8.2, in a
//! different style from the crate's (whole-vector comparisons instead of a
//! level-by-level walk), so that a shared misreading is less likely.

use proptest::prelude::*;
use starling_proto::topic::{matches, TopicError, TopicFilter, TopicName};

/// Reference matcher: split both sides, then compare lengths and zip.
fn reference_matches(filter: &str, name: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    // §4.7.2: a filter whose first character is a wildcard skips '$' names.
    if name.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let (fixed, multi) = match f.split_last() {
        Some((&"#", rest)) => (rest, true),
        _ => (&f[..], false),
    };
    let length_ok = if multi {
        n.len() >= fixed.len()
    } else {
        n.len() == fixed.len()
    };
    length_ok
        && fixed
            .iter()
            .zip(&n)
            .all(|(want, got)| *want == "+" || want == got)
}

/// Reference validator for an ordinary (non-shared) filter.
fn reference_plain_filter_ok(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    let last = levels.len() - 1;
    !filter.is_empty()
        && levels.iter().enumerate().all(|(i, level)| {
            let hash_ok = !level.contains('#') || (*level == "#" && i == last);
            let plus_ok = !level.contains('+') || *level == "+";
            hash_ok && plus_ok
        })
}

/// Reference validator including `$share/{ShareName}/{filter}`.
fn reference_filter_ok(filter: &str) -> bool {
    match filter.strip_prefix("$share/") {
        None => reference_plain_filter_ok(filter),
        Some(rest) => match rest.split_once('/') {
            None => false,
            Some((group, inner)) => {
                !group.is_empty()
                    && !group.contains(['+', '#'])
                    && !inner.starts_with("$share/")
                    && reference_plain_filter_ok(inner)
            }
        },
    }
}

fn name_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "a", "b", "$SYS"])
}

fn filter_level() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "a", "b", "$SYS", "+"])
}

/// Valid topic names from a small alphabet, so that filters hit them often.
fn valid_name() -> impl Strategy<Value = String> {
    prop::collection::vec(name_level(), 1..5)
        .prop_map(|levels| levels.join("/"))
        .prop_filter("a topic name is non-empty", |name| !name.is_empty())
}

/// Valid ordinary filters: levels from the alphabet, maybe ending in `#`.
fn valid_filter() -> impl Strategy<Value = String> {
    (prop::collection::vec(filter_level(), 0..5), any::<bool>())
        .prop_map(|(mut levels, hash)| {
            if hash || levels.is_empty() {
                levels.push("#");
            }
            levels.join("/")
        })
        .prop_filter("a topic filter is non-empty", |filter| !filter.is_empty())
}

/// Strings near the boundary of validity, with and without a `$share/` prefix, nested
/// or not.
fn filter_like() -> impl Strategy<Value = String> {
    concat!(
        "(\\$share/)?[ab/+#$]{0,10}",
        "|\\$share/[ag+#]{0,2}/[ab/+#$]{0,8}",
        "|\\$share/g/(\\$share/?)?[ag/+#]{0,4}",
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    // (a) [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.2-1]
    #[test]
    fn matches_agrees_with_the_reference(filter in valid_filter(), name in valid_name()) {
        let expected = reference_matches(&filter, &name);
        prop_assert_eq!(matches(&filter, &name), expected);
        let typed_filter = TopicFilter::try_from(filter.as_str()).unwrap();
        let typed_name = TopicName::try_from(name.as_str()).unwrap();
        prop_assert_eq!(typed_filter.matches(&typed_name), expected);
    }

    // A shared filter matches exactly what its inner filter matches.
    #[test]
    fn shared_filters_match_like_their_inner_filter(
        filter in valid_filter(),
        name in valid_name(),
    ) {
        let shared = TopicFilter::try_from(format!("$share/g/{filter}").as_str()).unwrap();
        let typed_name = TopicName::try_from(name.as_str()).unwrap();
        prop_assert_eq!(shared.matches(&typed_name), reference_matches(&filter, &name));
        let parts = shared.share().unwrap();
        prop_assert_eq!(parts.group().as_str(), "g");
        prop_assert_eq!(parts.filter().as_str(), filter.as_str());
    }

    // (b) [MQTT-4.7.1-1], [MQTT-4.7.1-2], [MQTT-4.7.3-1], [MQTT-4.8.2-1], [MQTT-4.8.2-2]
    #[test]
    fn filter_validation_agrees_with_the_reference(filter in filter_like()) {
        let result = TopicFilter::try_from(filter.as_str());
        prop_assert_eq!(result.is_ok(), reference_filter_ok(&filter), "{:?}", result);
        if let Ok(typed) = result {
            prop_assert_eq!(typed.as_str(), filter.as_str());
            prop_assert_eq!(typed.is_shared(), filter.starts_with("$share/"));
            prop_assert_eq!(typed.share().is_some(), typed.is_shared());
        }
    }

    // [MQTT-4.7.0-1], [MQTT-4.7.3-1]
    #[test]
    fn name_validation_agrees_with_the_reference(name in filter_like()) {
        let expected = if name.is_empty() {
            Err(TopicError::Empty)
        } else if name.contains(['+', '#']) {
            Err(TopicError::WildcardInName)
        } else {
            Ok(())
        };
        prop_assert_eq!(TopicName::try_from(name.as_str()).map(|_| ()), expected);
    }

    // (c) Nothing panics on arbitrary input, and every error names its rule.
    #[test]
    fn arbitrary_strings_never_panic(text in any::<String>(), other in any::<String>()) {
        let name = TopicName::try_from(text.as_str());
        let filter = TopicFilter::try_from(text.as_str());
        for error in [name.as_ref().err(), filter.as_ref().err()].into_iter().flatten() {
            let prefix = format!("[{}] ", error.rule());
            prop_assert!(error.to_string().starts_with(&prefix));
        }
        if let Ok(filter) = &filter {
            let _ = filter.share();
            let _ = filter.levels().count();
            if let Ok(other) = TopicName::try_from(other.as_str()) {
                let _ = filter.matches(&other);
            }
        }
        let _ = matches(&text, &other);
    }
}
