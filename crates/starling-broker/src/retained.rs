//! `RetainedStore`: the last retained message of each topic, in a trie by topic
//! level so that a new subscription's filter finds its retained messages without
//! scanning every topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use starling_proto::{TopicFilter, TopicName};

use crate::message::Message;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node, foldhash::fast::RandomState>,
    message: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

/// Retained messages by topic.
#[derive(Debug, Default)]
pub struct RetainedStore {
    root: Node,
    count: usize,
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Stores `message` as its topic's retained message, or clears the topic's
    /// retained message if the payload is empty [MQTT-3.3.1-6, MQTT-3.3.1-7].
    pub fn retain(&mut self, message: Arc<Message>) {
        if message.payload.is_empty() {
            self.remove(&message.topic);
            return;
        }
        let mut node = &mut self.root;
        for level in message.topic.levels() {
            node = node.children.entry(level.into()).or_default();
        }
        if node.message.replace(message).is_none() {
            self.count += 1;
        }
    }

    /// Removes the retained message of `topic`, if any.
    pub fn remove(&mut self, topic: &TopicName) -> bool {
        fn remove_at<'a>(node: &mut Node, mut levels: impl Iterator<Item = &'a str>) -> bool {
            let Some(level) = levels.next() else {
                return node.message.take().is_some();
            };
            let Some(child) = node.children.get_mut(level) else {
                return false;
            };
            let removed = remove_at(child, levels);
            if child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
        let removed = remove_at(&mut self.root, topic.levels());
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// The retained messages whose topic `filter` matches and that have not
    /// expired at `now` (a shared filter's inner filter is used).
    pub fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let inner = filter.share().map(|s| s.filter().clone());
        let filter = inner.as_ref().unwrap_or(filter);
        let mut out = Vec::new();
        let mut levels = filter.levels();
        let Some(first) = levels.next() else {
            return out;
        };
        for (name, child) in &self.root.children {
            // [MQTT-4.7.2-1]: a leading wildcard does not match a `$` topic.
            if name.starts_with('$') && (first == "+" || first == "#") {
                continue;
            }
            collect(child, name, first, levels.clone(), &mut out);
        }
        out.retain(|m| !m.is_expired(now));
        out
    }

    /// Every retained message (for persistence and `$SYS` counts).
    pub fn all(&self) -> Vec<Arc<Message>> {
        fn walk(node: &Node, out: &mut Vec<Arc<Message>>) {
            out.extend(node.message.clone());
            for child in node.children.values() {
                walk(child, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

/// `node` is the child named `name`; `level` is the filter level it must match.
fn collect<'f>(
    node: &Node,
    name: &str,
    level: &'f str,
    rest: impl Iterator<Item = &'f str> + Clone,
    out: &mut Vec<Arc<Message>>,
) {
    match level {
        "#" => {
            everything(node, out);
        }
        "+" => descend(node, rest, out),
        literal if literal == name => descend(node, rest, out),
        _ => {}
    }

    fn descend<'f>(
        node: &Node,
        mut rest: impl Iterator<Item = &'f str> + Clone,
        out: &mut Vec<Arc<Message>>,
    ) {
        match rest.next() {
            None => out.extend(node.message.clone()),
            Some(next) => {
                // `a/#` also matches `a` itself.
                if next == "#" {
                    out.extend(node.message.clone());
                }
                for (name, child) in &node.children {
                    collect(child, name, next, rest.clone(), out);
                }
            }
        }
    }

    fn everything(node: &Node, out: &mut Vec<Arc<Message>>) {
        out.extend(node.message.clone());
        for child in node.children.values() {
            everything(child, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use starling_proto::QoS;

    fn message(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::try_from(topic).unwrap(),
            payload: Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Default::default(),
            expires_at: None,
            origin: None,
            stored_id: Default::default(),
        })
    }

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let filter = TopicFilter::try_from(filter).unwrap();
        let mut out: Vec<String> = store
            .matching(&filter, Instant::now())
            .iter()
            .map(|m| m.topic.to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn finds_retained_messages_by_filter() {
        let mut store = RetainedStore::new();
        for topic in ["a", "a/b", "a/b/c", "a//c", "$SYS/x", "b"] {
            store.retain(message(topic, "x"));
        }
        assert_eq!(store.len(), 6);
        assert_eq!(topics(&store, "a/#"), vec!["a", "a//c", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "a/+"), vec!["a/b"]);
        assert_eq!(topics(&store, "a/+/c"), vec!["a//c", "a/b/c"]);
        assert_eq!(topics(&store, "#"), vec!["a", "a//c", "a/b", "a/b/c", "b"]);
        assert_eq!(topics(&store, "$SYS/#"), vec!["$SYS/x"]);
        assert_eq!(topics(&store, "$share/g/a/+"), vec!["a/b"]);
    }

    #[test]
    fn empty_payload_clears_the_topic() {
        // [MQTT-3.3.1-6]
        let mut store = RetainedStore::new();
        store.retain(message("a/b", "x"));
        store.retain(message("a/b", "y"));
        assert_eq!(store.len(), 1);
        store.retain(message("a/b", ""));
        assert!(store.is_empty());
        assert!(store.root.is_empty());
    }
}
