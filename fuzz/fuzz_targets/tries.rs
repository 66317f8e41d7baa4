//! The broker's subscription router and retained store, driven by arbitrary
//! operations on topics that may be thousands of levels deep (issue 17), and
//! checked after every run against flat lists scanned with a matcher written
//! here from MQTT 5.0 §4.7. Nothing may panic or overflow the stack.
//!
//! Input layout, repeated: an op byte (low 2 bits: subscribe, unsubscribe,
//! retain, clear; next 2 bits: the subscriber), a segment count byte (1 to
//! 8 segments), then per segment a byte whose low bits pick a level (`a`,
//! `b`, empty, `+`, `#`, `$s`) and whose high bit says a repeat byte follows:
//! the level then repeats 64 times that byte, so a few bytes make a deep topic.

#![no_main]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use starling_broker::message::Message;
use starling_broker::retained::RetainedStore;
use starling_broker::router::{Router, Subscription};
use starling_proto::{QoS, SubscriptionOptions, TopicFilter, TopicName};

const LEVELS: [&str; 6] = ["a", "b", "", "+", "#", "$s"];

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
    (if rest { n.len() >= fixed.len() } else { n.len() == fixed.len() })
        && fixed.iter().zip(&n).all(|(w, g)| *w == "+" || w == g)
}

/// Reads one topic from `data`; `None` when the input runs out.
fn topic(data: &mut &[u8]) -> Option<String> {
    let (&count, rest) = data.split_first()?;
    *data = rest;
    let mut levels: Vec<&str> = Vec::new();
    for _ in 0..(count % 8 + 1) {
        let (&spec, rest) = data.split_first()?;
        *data = rest;
        let level = LEVELS[usize::from(spec & 0x7F) % LEVELS.len()];
        let repeat = if spec & 0x80 != 0 {
            let (&n, rest) = data.split_first()?;
            *data = rest;
            usize::from(n) * 64 + 1
        } else {
            1
        };
        levels.extend(std::iter::repeat_n(level, repeat));
    }
    Some(levels.join("/"))
}

fn message(topic: TopicName) -> Arc<Message> {
    Arc::new(Message {
        topic,
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

fuzz_target!(|input: &[u8]| {
    let mut data = input;
    let mut router: Router<u8> = Router::new();
    let mut subscriptions: BTreeSet<(String, u8)> = BTreeSet::new();
    let mut store = RetainedStore::new();
    let mut retained: BTreeSet<String> = BTreeSet::new();
    let mut names: Vec<String> = Vec::new();
    while let Some((&op, rest)) = data.split_first() {
        data = rest;
        let Some(text) = topic(&mut data) else { break };
        let key = (op >> 2) & 3;
        match op & 3 {
            0 | 1 => {
                let Ok(filter) = TopicFilter::try_from(text.as_str()) else {
                    continue;
                };
                if op & 3 == 0 {
                    let existed = router.subscribe(
                        &filter,
                        key,
                        Subscription {
                            options: SubscriptionOptions::new(QoS::AtMostOnce),
                            id: None,
                        },
                    );
                    assert_eq!(existed, !subscriptions.insert((text, key)));
                } else {
                    let removed = router.unsubscribe(&filter, &key);
                    assert_eq!(removed, subscriptions.remove(&(text, key)));
                }
            }
            op => {
                let Ok(name) = TopicName::try_from(text.as_str()) else {
                    continue;
                };
                if op == 2 {
                    store.retain(message(name));
                    retained.insert(text.clone());
                } else {
                    assert_eq!(store.remove(&name), retained.remove(&text));
                }
                names.push(text);
            }
        }
        assert_eq!(router.len(), subscriptions.len());
        assert_eq!(store.len(), retained.len());
    }
    for name in &names {
        let topic = TopicName::try_from(name.as_str()).expect("valid above");
        let mut got: Vec<u8> = Vec::new();
        router.matches(&topic, |_| true, |m| got.push(*m.key));
        got.sort_unstable();
        let mut want: Vec<u8> = subscriptions
            .iter()
            .filter(|(f, _)| !f.starts_with("$share/") && reference_matches(f, name))
            .map(|(_, k)| *k)
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }
    let now = Instant::now();
    for (filter, _) in &subscriptions {
        let parsed = TopicFilter::try_from(filter.as_str()).expect("valid above");
        let mut got: Vec<String> = store
            .matching(&parsed, now)
            .iter()
            .map(|m| m.topic.as_str().to_owned())
            .collect();
        got.sort();
        let want: Vec<String> = retained
            .iter()
            .filter(|t| reference_matches(filter, t))
            .cloned()
            .collect();
        assert_eq!(got, want);
    }
    drop(router);
    drop(store);
});
