//! Property tests of the broker's two tries, the subscription [`Router`] and
//! the [`RetainedStore`], against references written here as flat lists
//! scanned with a matcher from MQTT 5.0 §4.7 (no trie, no shared code).
//!
//! Topics and filters are generated both wide (a few levels from a small
//! alphabet, so that they collide) and deep (hundreds to 12,000
//! levels, issue 17): any recursion on the depth in the tries overflows the
//! test thread's 2 MiB stack.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;
use starling_broker::message::Message;
use starling_broker::retained::RetainedStore;
use starling_broker::router::{Router, Subscription};
use starling_proto::{QoS, SubscriptionOptions, TopicFilter, TopicName};

/// §4.7: `+` one level (an empty one too), `#` last and the rest including
/// the parent, a leading wildcard never matches a `$` name.
fn reference_matches(filter: &str, name: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let n: Vec<&str> = name.split('/').collect();
    if name.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let (fixed, rest) = match f.split_last() {
        Some((&"#", fixed)) => (fixed, true),
        _ => (&f[..], false),
    };
    (if rest {
        n.len() >= fixed.len()
    } else {
        n.len() == fixed.len()
    }) && fixed.iter().zip(&n).all(|(w, g)| *w == "+" || w == g)
}

/// Levels of a name: shallow from a small alphabet, or a short pattern
/// repeated to a depth of 200 to 12,000.
fn name_levels() -> impl Strategy<Value = Vec<String>> {
    let level = prop_oneof![Just("a"), Just("b"), Just("")].prop_map(str::to_owned);
    prop_oneof![
        4 => prop::collection::vec(level.clone(), 1..6),
        1 => (prop::collection::vec(level, 1..4), 200usize..12_000).prop_map(|(pattern, depth)| {
            pattern.iter().cycle().take(depth).cloned().collect()
        }),
    ]
}

fn name() -> impl Strategy<Value = String> {
    (name_levels(), any::<bool>()).prop_map(|(levels, system)| topic_text(&levels, system))
}

/// The levels joined, under `$s/` for a system topic; a topic of one empty
/// level is no topic at all [MQTT-4.7.3-1], so that one is `a`.
fn topic_text(levels: &[String], system: bool) -> String {
    let text = match levels.join("/") {
        text if text.is_empty() => "a".to_owned(),
        text => text,
    };
    if system {
        format!("$s/{text}")
    } else {
        text
    }
}

/// A filter: a name's levels, some turned into `+`, maybe ending in `#`.
fn filter() -> impl Strategy<Value = String> {
    (
        name_levels(),
        prop::collection::vec(any::<bool>(), 1..8),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mut levels, pluses, hash, system)| {
            for (level, plus) in levels.iter_mut().zip(pluses.iter().cycle()) {
                if *plus {
                    *level = "+".into();
                }
            }
            if hash {
                levels.push("#".into());
            }
            topic_text(&levels, system)
        })
}

fn subscription() -> Subscription {
    Subscription {
        options: SubscriptionOptions::new(QoS::AtMostOnce),
        id: None,
    }
}

fn retained_message(topic: &str) -> Arc<Message> {
    Arc::new(Message {
        topic: TopicName::try_from(topic).unwrap(),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
        expires_at: None,
        origin: None,
        publisher: None,
        stored_id: Default::default(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Subscribing and unsubscribing in any order leaves the router matching
    /// exactly what the list of subscriptions matches.
    #[test]
    fn the_router_matches_what_its_subscriptions_match(
        ops in prop::collection::vec((filter(), 0u8..3, any::<bool>()), 1..24),
        names in prop::collection::vec(name(), 1..12),
    ) {
        let mut router: Router<u8> = Router::new();
        let mut reference: BTreeSet<(String, u8)> = BTreeSet::new();
        for (filter, key, subscribe) in &ops {
            let parsed = TopicFilter::try_from(filter.as_str()).unwrap();
            if *subscribe {
                let existed = router.subscribe(&parsed, *key, subscription());
                prop_assert_eq!(existed, !reference.insert((filter.clone(), *key)));
            } else {
                let removed = router.unsubscribe(&parsed, key);
                prop_assert_eq!(removed, reference.remove(&(filter.clone(), *key)));
            }
            prop_assert_eq!(router.len(), reference.len());
        }
        for name in names.iter().chain(ops.iter().map(|(f, _, _)| f).filter(|f| !f.contains(['+', '#']))) {
            let topic = TopicName::try_from(name.as_str()).unwrap();
            let mut got: Vec<u8> = Vec::new();
            router.matches(&topic, |_| true, |m| got.push(*m.key));
            got.sort_unstable();
            let mut want: Vec<u8> = reference
                .iter()
                .filter(|(f, _)| reference_matches(f, name))
                .map(|(_, k)| *k)
                .collect();
            want.sort_unstable();
            prop_assert_eq!(got, want, "name of {} levels", name.split('/').count());
        }
        // Unsubscribing everything leaves nothing to match.
        for (filter, key) in &reference {
            prop_assert!(router.unsubscribe(&TopicFilter::try_from(filter.as_str()).unwrap(), key));
        }
        prop_assert!(router.is_empty());
    }

    /// Retaining and clearing in any order leaves the store finding exactly
    /// what a scan of its topics finds.
    #[test]
    fn the_retained_store_finds_what_a_scan_finds(
        ops in prop::collection::vec((name(), any::<bool>()), 1..24),
        filters in prop::collection::vec(filter(), 1..12),
    ) {
        let mut store = RetainedStore::new();
        let mut reference: BTreeMap<String, ()> = BTreeMap::new();
        for (topic, keep) in &ops {
            if *keep {
                store.retain(retained_message(topic));
                reference.insert(topic.clone(), ());
            } else {
                let removed = store.remove(&TopicName::try_from(topic.as_str()).unwrap());
                prop_assert_eq!(removed, reference.remove(topic).is_some());
            }
            prop_assert_eq!(store.len(), reference.len());
        }
        let now = Instant::now();
        for filter in &filters {
            let parsed = TopicFilter::try_from(filter.as_str()).unwrap();
            let mut got: Vec<String> = store
                .matching(&parsed, now)
                .iter()
                .map(|m| m.topic.as_str().to_owned())
                .collect();
            got.sort();
            let want: Vec<String> = reference
                .keys()
                .filter(|t| reference_matches(filter, t))
                .cloned()
                .collect();
            prop_assert_eq!(got, want, "filter of {} levels", filter.split('/').count());
        }
        let mut all: Vec<String> = store.all().iter().map(|m| m.topic.as_str().to_owned()).collect();
        all.sort();
        prop_assert_eq!(all, reference.keys().cloned().collect::<Vec<_>>());
    }
}
