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
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.message.is_none()
    }
}

/// Freed level by level with a list of its own: the default drop recurses
/// once per level, and a publisher chooses how many levels a topic has.
impl Drop for Node {
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut rest: Vec<Node> = self.children.drain().map(|(_, child)| child).collect();
        while let Some(mut node) = rest.pop() {
            rest.extend(node.children.drain().map(|(_, child)| child));
        }
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

    /// Removes the retained message of `topic`, if any, and the nodes that
    /// then hold nothing. Walked, not recursed: a publisher chooses the depth.
    pub fn remove(&mut self, topic: &TopicName) -> bool {
        let path: Vec<&str> = topic.levels().collect();
        // The first level from which the path's nodes hold nothing but the
        // path (the last: nothing but the message removed).
        let mut cut = None;
        let mut node = &self.root;
        for (depth, level) in path.iter().enumerate() {
            let Some(child) = node.children.get(*level) else {
                return false;
            };
            let last = depth + 1 == path.len();
            if last && child.message.is_none() {
                return false;
            }
            let bare =
                (last || child.message.is_none()) && child.children.len() == usize::from(!last);
            match (bare, cut) {
                (true, None) => cut = Some(depth),
                (false, _) => cut = None,
                (true, Some(_)) => {}
            }
            node = child;
        }
        if path.is_empty() {
            return false;
        }
        let mut node = &mut self.root;
        let stop = cut.unwrap_or(path.len());
        for level in &path[..stop] {
            match node.children.get_mut(*level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        match cut {
            Some(cut) => {
                node.children.remove(path[cut]);
            }
            None => {
                node.message = None;
            }
        }
        self.count -= 1;
        true
    }

    /// The retained messages whose topic `filter` matches and that have not
    /// expired at `now` (a shared filter's inner filter is used). Walked with
    /// a list of nodes to visit, not recursed.
    pub fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let inner = filter.share().map(|s| s.filter().clone());
        let filter = inner.as_ref().unwrap_or(filter);
        let levels: Vec<&str> = filter.levels().collect();
        let mut out = Vec::new();
        // (node, index of the filter level its children must match)
        let mut visit: Vec<(&Node, usize)> = vec![(&self.root, 0)];
        while let Some((node, at)) = visit.pop() {
            let Some(&level) = levels.get(at) else {
                out.extend(node.message.clone());
                continue;
            };
            // [MQTT-4.7.2-1]: a leading wildcard does not match a `$` topic.
            let skip_system = at == 0;
            match level {
                "#" => {
                    // `a/#` also matches `a` itself (the root holds none).
                    out.extend(node.message.clone());
                    for (name, child) in &node.children {
                        if !(skip_system && name.starts_with('$')) {
                            everything(child, &mut out);
                        }
                    }
                }
                "+" => {
                    for (name, child) in &node.children {
                        if !(skip_system && name.starts_with('$')) {
                            visit.push((child, at + 1));
                        }
                    }
                }
                literal => {
                    if let Some(child) = node.children.get(literal) {
                        visit.push((child, at + 1));
                    }
                }
            }
        }
        out.retain(|m| !m.is_expired(now));
        out
    }

    /// Every retained message (for persistence and `$SYS` counts).
    pub fn all(&self) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        everything(&self.root, &mut out);
        out
    }
}

/// Every message at and below `node`, with a list of nodes to visit.
fn everything(node: &Node, out: &mut Vec<Arc<Message>>) {
    let mut visit = vec![node];
    while let Some(node) = visit.pop() {
        out.extend(node.message.clone());
        visit.extend(node.children.values());
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
            publisher: None,
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

    /// Issue 17: no recursion on a depth a publisher chooses. 32,000 levels (the most a 64 KiB topic holds with one-byte names)
    /// overflow a test thread's 2 MiB stack at once in a recursive walk,
    /// removal or drop.
    #[test]
    fn topics_of_any_depth_are_kept_found_removed_and_dropped_without_recursion() {
        const DEPTH: usize = 32_000;
        let deep = |level: &str, last: &str| {
            let mut text = vec![level; DEPTH - 1];
            text.push(last);
            text.join("/")
        };
        let mut store = RetainedStore::new();
        store.retain(message(&deep("a", "a"), "x"));
        store.retain(message(&deep("", ""), "x"));
        store.retain(message(&deep("a", "b"), "x"));
        assert_eq!(store.len(), 3);
        assert_eq!(topics(&store, "#").len(), 3);
        assert_eq!(topics(&store, &deep("+", "+")).len(), 3);
        assert_eq!(
            topics(&store, &deep("a", "#")),
            vec![deep("a", "a"), deep("a", "b")]
        );
        assert_eq!(store.all().len(), 3);
        assert!(store.remove(&TopicName::try_from(deep("a", "a").as_str()).unwrap()));
        assert!(!store.remove(&TopicName::try_from(deep("a", "a").as_str()).unwrap()));
        assert_eq!(store.len(), 2);
        assert!(store.remove(&TopicName::try_from(deep("", "").as_str()).unwrap()));
        assert_eq!(
            store.root.children.len(),
            1,
            "the empty levels' branch is pruned"
        );
        drop(store);
    }

    #[test]
    fn removal_prunes_only_what_holds_nothing_else() {
        let mut store = RetainedStore::new();
        for topic in ["a/b/c/d", "a/b", "a/b/x"] {
            store.retain(message(topic, "x"));
        }
        assert!(store.remove(&TopicName::try_from("a/b/c/d").unwrap()));
        assert!(!store.root.children["a"].children["b"]
            .children
            .contains_key("c"));
        assert_eq!(topics(&store, "#"), vec!["a/b", "a/b/x"]);
        assert!(store.remove(&TopicName::try_from("a/b").unwrap()));
        assert_eq!(topics(&store, "#"), vec!["a/b/x"]);
        assert!(!store.remove(&TopicName::try_from("a").unwrap()));
        assert!(store.remove(&TopicName::try_from("a/b/x").unwrap()));
        assert!(store.root.is_empty());
        assert!(store.is_empty());
    }
}
