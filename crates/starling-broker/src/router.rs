//! `Router`: the subscription trie. It answers "which subscriptions match this
//! topic name" for every PUBLISH, so it is built for that: one trie level per
//! topic level, `+` and `#` children kept apart from literal ones, and matching
//! that walks the name's levels without allocating.
//!
//! Shared subscriptions (`$share/{group}/{filter}`) live in the node of their
//! inner filter, one group per name; a match yields one member per group, chosen
//! round-robin among those the caller says are online. The cursor is atomic so
//! matching needs only shared access: many publishers route at once under a read
//! lock.
//!
//! The router is generic over the subscriber key so that it can be tested against
//! a naive reference with plain integers; the broker uses its session handles.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use starling_proto::{SubscriptionId, SubscriptionOptions, TopicFilter, TopicName};

/// What a subscription asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// QoS, No Local, Retain As Published, Retain Handling.
    pub options: SubscriptionOptions,
    /// The Subscription Identifier the SUBSCRIBE carried.
    pub id: Option<SubscriptionId>,
}

/// One matching subscription.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a, K> {
    /// The subscriber.
    pub key: &'a K,
    /// Its subscription.
    pub subscription: &'a Subscription,
    /// The `$share/{group}/{filter}` it came through, for a shared subscription.
    pub shared: Option<&'a TopicFilter>,
}

#[derive(Debug)]
struct SharedGroup<K> {
    filter: TopicFilter,
    members: Vec<(K, Subscription)>,
    cursor: AtomicUsize,
}

/// The maps use foldhash (seeded per process, so clients cannot aim
/// collisions) rather than SipHash: every PUBLISH hashes each level of its
/// topic here, and SipHash was the larger part of the lookup.
#[derive(Debug)]
struct Node<K> {
    literal: HashMap<Box<str>, Node<K>, RandomState>,
    plus: Option<Box<Node<K>>>,
    /// Subscriptions whose filter ends at this node.
    exact: HashMap<K, Subscription, RandomState>,
    /// Subscriptions whose filter is this node followed by `#`.
    hash: HashMap<K, Subscription, RandomState>,
    shared_exact: HashMap<Box<str>, SharedGroup<K>, RandomState>,
    shared_hash: HashMap<Box<str>, SharedGroup<K>, RandomState>,
}

impl<K> Default for Node<K> {
    fn default() -> Self {
        Node {
            literal: HashMap::default(),
            plus: None,
            exact: HashMap::default(),
            hash: HashMap::default(),
            shared_exact: HashMap::default(),
            shared_hash: HashMap::default(),
        }
    }
}

/// Dropping a trie frees it level by level with a list of its own: the
/// default drop recurses once per level, and a client chooses how many
/// levels a filter has.
impl<K> Drop for Node<K> {
    fn drop(&mut self) {
        if self.literal.is_empty() && self.plus.is_none() {
            return;
        }
        let mut rest: Vec<Node<K>> = self.children_taken();
        while let Some(mut node) = rest.pop() {
            rest.append(&mut node.children_taken());
            // `node` drops here with no children: no recursion.
        }
    }
}

impl<K> Node<K> {
    /// Takes this node's children out of it.
    fn children_taken(&mut self) -> Vec<Node<K>> {
        let mut children: Vec<Node<K>> = self.literal.drain().map(|(_, child)| child).collect();
        children.extend(self.plus.take().map(|plus| *plus));
        children
    }

    /// Whether nothing subscribes here (children aside).
    fn has_no_subscriptions(&self) -> bool {
        self.exact.is_empty()
            && self.hash.is_empty()
            && self.shared_exact.is_empty()
            && self.shared_hash.is_empty()
    }

    /// The child for a filter level (`+` or a literal).
    fn child(&self, level: &str) -> Option<&Node<K>> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.literal.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node<K>> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.literal.get_mut(level)
        }
    }

    /// Removes the child for a filter level, with everything below it.
    fn remove_child(&mut self, level: &str) {
        if level == "+" {
            self.plus = None;
        } else {
            self.literal.remove(level);
        }
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.hash.is_empty()
            && self.shared_exact.is_empty()
            && self.shared_hash.is_empty()
    }
}

/// The subscription trie.
#[derive(Debug)]
pub struct Router<K> {
    root: Node<K>,
    count: usize,
}

impl<K> Default for Router<K> {
    fn default() -> Self {
        Router {
            root: Node::default(),
            count: 0,
        }
    }
}

/// Where a filter's subscriptions sit, once the filter is taken apart.
enum Slot<'f> {
    Direct,
    Shared(&'f str),
}

fn split(filter: &TopicFilter) -> (Slot<'_>, &str) {
    let text = filter.as_str();
    match text
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((group, inner)) if filter.is_shared() => (Slot::Shared(group), inner),
        _ => (Slot::Direct, text),
    }
}

impl<K: Clone + Eq + Hash> Router<K> {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is no subscription.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces `key`'s subscription to `filter` [MQTT-3.8.4-3].
    /// Returns whether it already existed.
    pub fn subscribe(&mut self, filter: &TopicFilter, key: K, subscription: Subscription) -> bool {
        let (slot, inner) = split(filter);
        let (node, ends_with_hash) = descend(&mut self.root, inner);
        let existed = match slot {
            Slot::Direct => {
                let map = if ends_with_hash {
                    &mut node.hash
                } else {
                    &mut node.exact
                };
                map.insert(key, subscription).is_some()
            }
            Slot::Shared(group) => {
                let groups = if ends_with_hash {
                    &mut node.shared_hash
                } else {
                    &mut node.shared_exact
                };
                let group = groups.entry(group.into()).or_insert_with(|| SharedGroup {
                    filter: filter.clone(),
                    members: Vec::new(),
                    cursor: AtomicUsize::new(0),
                });
                match group.members.iter_mut().find(|(k, _)| *k == key) {
                    Some(member) => {
                        member.1 = subscription;
                        true
                    }
                    None => {
                        group.members.push((key, subscription));
                        false
                    }
                }
            }
        };
        if !existed {
            self.count += 1;
        }
        existed
    }

    /// Removes `key`'s subscription to `filter`; returns whether it existed.
    pub fn unsubscribe(&mut self, filter: &TopicFilter, key: &K) -> bool {
        let (slot, inner) = split(filter);
        let mut path: Vec<&str> = inner.split('/').collect();
        let ends_with_hash = path.last() == Some(&"#");
        if ends_with_hash {
            path.pop();
        }
        let mut node = &mut self.root;
        for level in &path {
            match node.child_mut(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        let removed = match slot {
            Slot::Direct => {
                let map = if ends_with_hash {
                    &mut node.hash
                } else {
                    &mut node.exact
                };
                map.remove(key).is_some()
            }
            Slot::Shared(group) => {
                let groups = if ends_with_hash {
                    &mut node.shared_hash
                } else {
                    &mut node.shared_exact
                };
                let Some(members) = groups.get_mut(group) else {
                    return false;
                };
                let before = members.members.len();
                members.members.retain(|(k, _)| k != key);
                let removed = members.members.len() < before;
                if members.members.is_empty() {
                    groups.remove(group);
                }
                removed
            }
        };
        if removed {
            self.count -= 1;
            self.prune(&path);
        }
        removed
    }

    /// Removes the nodes along `path` that hold nothing any more: from the
    /// highest one below which the path holds no subscription and no other
    /// branch. Walked, not recursed: a client chooses the depth.
    fn prune(&mut self, path: &[&str]) {
        // The first level whose node, and every node below it on the path,
        // holds only the path's next node (the last: nothing at all).
        let mut cut = None;
        let mut node = &self.root;
        for (depth, level) in path.iter().enumerate() {
            let Some(child) = node.child(level) else {
                return;
            };
            let branches = child.literal.len() + usize::from(child.plus.is_some());
            let bare =
                child.has_no_subscriptions() && branches == usize::from(depth + 1 < path.len());
            match (bare, cut) {
                (true, None) => cut = Some(depth),
                (false, _) => cut = None,
                (true, Some(_)) => {}
            }
            node = child;
        }
        let Some(cut) = cut else { return };
        let mut parent = &mut self.root;
        for level in &path[..cut] {
            match parent.child_mut(level) {
                Some(child) => parent = child,
                None => return,
            }
        }
        parent.remove_child(path[cut]);
    }

    /// The next member of the shared subscription `filter` for which `online`
    /// holds, round-robin; for handing a message over when a member leaves.
    pub fn shared_member(
        &self,
        filter: &TopicFilter,
        online: impl Fn(&K) -> bool,
    ) -> Option<(&K, &Subscription)> {
        let (Slot::Shared(group), inner) = split(filter) else {
            return None;
        };
        let mut node = &self.root;
        let mut levels = inner.split('/').peekable();
        let mut hash = false;
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                hash = true;
                break;
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.literal.get(level)?
            };
        }
        let groups = if hash {
            &node.shared_hash
        } else {
            &node.shared_exact
        };
        let group = groups.get(group)?;
        let n = group.members.len();
        let start = group.cursor.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &group.members[(start + i) % n])
            .find(|(key, _)| online(key))
            .map(|(k, s)| (k, s))
    }

    /// Calls `on_match` for every subscription matching `topic`. For a shared
    /// group, only one member: the next, round-robin, for which `online` holds
    /// (or the next of all if none does, so that a message for an offline group
    /// is still queued for one of them).
    pub fn matches<'a>(
        &'a self,
        topic: &TopicName,
        online: impl Fn(&K) -> bool,
        mut on_match: impl FnMut(Match<'a, K>),
    ) {
        let mut levels = topic.levels();
        let Some(first) = levels.next() else { return };
        // [MQTT-4.7.2-1]: a leading wildcard does not match a `$` topic.
        let system = topic.is_system();
        let root = &self.root;
        if !system {
            emit(root, true, &online, &mut on_match);
        }
        if let Some(child) = root.literal.get(first) {
            walk(child, levels.clone(), &online, &mut on_match);
        }
        if !system {
            if let Some(plus) = &root.plus {
                walk(plus, levels, &online, &mut on_match);
            }
        }
    }
}

/// Finds or creates the node of `inner`'s levels; returns it and whether the
/// filter ends in `#` (whose subscriptions sit in the parent node's `hash`).
fn descend<'n, K>(mut node: &'n mut Node<K>, inner: &str) -> (&'n mut Node<K>, bool) {
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if level == "#" && levels.peek().is_none() {
            return (node, true);
        }
        node = if level == "+" {
            node.plus.get_or_insert_with(Default::default)
        } else {
            node.literal.entry(level.into()).or_default()
        };
    }
    (node, false)
}

/// Emits every subscription under `node` that matches the rest of a topic
/// name, `levels`. Depth first along the literal children, with the `+`
/// branches met on the way kept in a list ([`Branches`]: no allocation for
/// the first few): a loop, not a recursion, whatever the topic's depth.
fn walk<'a, 'l, K: Clone + Eq + Hash, L: Iterator<Item = &'l str> + Clone>(
    node: &'a Node<K>,
    levels: L,
    online: &impl Fn(&K) -> bool,
    on_match: &mut impl FnMut(Match<'a, K>),
) {
    let mut branches: Branches<(&'a Node<K>, L)> = Branches::new();
    let mut next = Some((node, levels));
    while let Some((mut node, mut levels)) = next.take().or_else(|| branches.pop()) {
        loop {
            // `a/#` matches `a` itself and everything below it [MQTT-4.7.1-1].
            emit(node, true, online, on_match);
            let Some(level) = levels.next() else {
                emit(node, false, online, on_match);
                break;
            };
            if let Some(plus) = &node.plus {
                branches.push((plus, levels.clone()));
            }
            match node.literal.get(level) {
                Some(child) => node = child,
                None => break,
            }
        }
    }
}

/// A stack of the walk's pending `+` branches: the first [`INLINE`] in place,
/// any more in a `Vec`. A walk meets one per `+` level of the filters along
/// its path, so a PUBLISH almost never allocates for it.
struct Branches<T> {
    inline: [Option<T>; INLINE],
    len: usize,
    spilled: Vec<T>,
}

/// Branches held without an allocation.
const INLINE: usize = 8;

impl<T> Branches<T> {
    fn new() -> Self {
        Branches {
            inline: [const { None }; INLINE],
            len: 0,
            spilled: Vec::new(),
        }
    }

    fn push(&mut self, item: T) {
        if self.len < INLINE {
            self.inline[self.len] = Some(item);
            self.len += 1;
        } else {
            self.spilled.push(item);
        }
    }

    /// The last pushed (what spilled was pushed after everything in place).
    fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spilled.pop() {
            return Some(item);
        }
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.inline[self.len].take()
    }
}

fn emit<'a, K: Clone + Eq + Hash>(
    node: &'a Node<K>,
    hash: bool,
    online: &impl Fn(&K) -> bool,
    on_match: &mut impl FnMut(Match<'a, K>),
) {
    let (direct, shared) = if hash {
        (&node.hash, &node.shared_hash)
    } else {
        (&node.exact, &node.shared_exact)
    };
    for (key, subscription) in direct {
        on_match(Match {
            key,
            subscription,
            shared: None,
        });
    }
    for group in shared.values() {
        if let Some((key, subscription)) = pick(group, online) {
            on_match(Match {
                key,
                subscription,
                shared: Some(&group.filter),
            });
        }
    }
}

fn pick<'a, K>(
    group: &'a SharedGroup<K>,
    online: &impl Fn(&K) -> bool,
) -> Option<&'a (K, Subscription)> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = group.cursor.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|i| &group.members[(start + i) % n])
        .find(|(key, _)| online(key))
        .or_else(|| group.members.get(start % n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_proto::QoS;

    fn sub(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions::new(qos),
            id: None,
        }
    }

    fn matched(router: &Router<u32>, topic: &str) -> Vec<u32> {
        let mut keys = Vec::new();
        let topic = TopicName::try_from(topic).unwrap();
        router.matches(&topic, |_| true, |m| keys.push(*m.key));
        keys.sort_unstable();
        keys
    }

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    #[test]
    fn wildcards_match_as_the_specification_says() {
        let mut router = Router::new();
        router.subscribe(&filter("sport/tennis/player1/#"), 1, sub(QoS::AtMostOnce));
        router.subscribe(&filter("sport/+"), 2, sub(QoS::AtMostOnce));
        router.subscribe(&filter("#"), 3, sub(QoS::AtMostOnce));
        router.subscribe(&filter("+/+"), 4, sub(QoS::AtMostOnce));
        // [MQTT-4.7.1-1]: `#` includes the parent level.
        assert_eq!(matched(&router, "sport/tennis/player1"), vec![1, 3]);
        assert_eq!(
            matched(&router, "sport/tennis/player1/score/wimbledon"),
            vec![1, 3]
        );
        // [MQTT-4.7.1-2]: `+` matches exactly one level, an empty one too.
        assert_eq!(matched(&router, "sport/"), vec![2, 3, 4]);
        assert_eq!(matched(&router, "sport"), vec![3]);
        assert_eq!(matched(&router, "/finance"), vec![3, 4]);
    }

    #[test]
    fn leading_wildcards_skip_system_topics() {
        // [MQTT-4.7.2-1]
        let mut router = Router::new();
        router.subscribe(&filter("#"), 1, sub(QoS::AtMostOnce));
        router.subscribe(&filter("+/monitor/Clock"), 2, sub(QoS::AtMostOnce));
        router.subscribe(&filter("$SYS/#"), 3, sub(QoS::AtMostOnce));
        router.subscribe(&filter("$SYS/monitor/+"), 4, sub(QoS::AtMostOnce));
        assert_eq!(matched(&router, "$SYS/monitor/Clock"), vec![3, 4]);
    }

    #[test]
    fn subscribe_replaces_and_unsubscribe_prunes() {
        // [MQTT-3.8.4-3]
        let mut router = Router::new();
        assert!(!router.subscribe(&filter("a/+"), 1, sub(QoS::AtMostOnce)));
        assert!(router.subscribe(&filter("a/+"), 1, sub(QoS::ExactlyOnce)));
        assert_eq!(router.len(), 1);
        let mut qos = Vec::new();
        router.matches(
            &TopicName::from_static("a/b"),
            |_| true,
            |m| qos.push(m.subscription.options.qos),
        );
        assert_eq!(qos, vec![QoS::ExactlyOnce]);
        assert!(router.unsubscribe(&filter("a/+"), &1));
        assert!(!router.unsubscribe(&filter("a/+"), &1));
        assert!(router.is_empty());
        assert!(router.root.is_empty());
    }

    #[test]
    fn shared_group_delivers_to_one_member_round_robin() {
        let mut router = Router::new();
        for key in 1..=3 {
            router.subscribe(&filter("$share/g/job/#"), key, sub(QoS::AtLeastOnce));
        }
        router.subscribe(&filter("$share/h/job/+"), 9, sub(QoS::AtLeastOnce));
        let mut seen = Vec::new();
        for _ in 0..6 {
            let keys = matched(&router, "job/1");
            assert_eq!(keys.len(), 2);
            assert!(keys.contains(&9));
            seen.extend(keys.into_iter().filter(|&k| k != 9));
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![1, 1, 2, 2, 3, 3]);
        // Offline members are skipped while another is online.
        let mut keys = Vec::new();
        router.matches(
            &TopicName::from_static("job/1"),
            |k| *k == 2,
            |m| keys.push(*m.key),
        );
        assert!(keys.contains(&2));
        assert!(router.unsubscribe(&filter("$share/g/job/#"), &2));
        assert_eq!(router.len(), 3);
    }

    /// Issue 17: no recursion on a depth a client chooses. 32,000 levels (the most a 64 KiB topic holds with one-byte names)
    /// overflow a test thread's 2 MiB stack at once in a recursive walk,
    /// prune or drop.
    #[test]
    fn filters_and_topics_of_any_depth_match_prune_and_drop_without_recursion() {
        const DEPTH: usize = 32_000;
        let deep = |level: &str, last: &str| {
            let mut text = vec![level; DEPTH - 1];
            text.push(last);
            text.join("/")
        };
        let mut router = Router::new();
        router.subscribe(&filter(&deep("a", "a")), 1, sub(QoS::AtMostOnce));
        router.subscribe(&filter(&deep("+", "#")), 2, sub(QoS::AtMostOnce));
        router.subscribe(&filter(&deep("a", "#")), 3, sub(QoS::AtMostOnce));
        router.subscribe(
            &filter(&format!("$share/g/{}", deep("+", "a"))),
            4,
            sub(QoS::AtMostOnce),
        );
        router.subscribe(&filter("a/b"), 5, sub(QoS::AtMostOnce));
        assert_eq!(matched(&router, &deep("a", "a")), vec![1, 2, 3, 4]);
        assert_eq!(matched(&router, &deep("", "")), vec![2]);
        assert!(router.unsubscribe(&filter(&deep("a", "a")), &1));
        assert!(router.unsubscribe(&filter(&deep("a", "#")), &3));
        assert_eq!(matched(&router, &deep("a", "a")), vec![2, 4]);
        assert!(router.unsubscribe(&filter(&deep("+", "#")), &2));
        assert!(router.unsubscribe(&filter(&format!("$share/g/{}", deep("+", "a"))), &4));
        // Pruned back to what `a/b` needs: the deep branches are gone.
        assert_eq!(router.root.literal.len(), 1);
        assert!(router.root.plus.is_none());
        assert_eq!(router.root.literal["a"].literal.len(), 1);
        assert_eq!(matched(&router, "a/b"), vec![5]);
        // And a deep trie dropped whole.
        router.subscribe(&filter(&deep("x", "y")), 6, sub(QoS::AtMostOnce));
        drop(router);
    }

    #[test]
    fn unsubscribe_prunes_only_what_holds_nothing_else() {
        let mut router = Router::new();
        router.subscribe(&filter("a/b/c/d"), 1, sub(QoS::AtMostOnce));
        router.subscribe(&filter("a/b"), 2, sub(QoS::AtMostOnce));
        router.subscribe(&filter("a/b/x"), 3, sub(QoS::AtMostOnce));
        router.subscribe(&filter("a/+/c/#"), 4, sub(QoS::AtMostOnce));
        assert!(router.unsubscribe(&filter("a/b/c/d"), &1));
        // `a/b/c` is gone (nothing below it); `a/b` and `a/b/x` stay.
        assert!(!router.root.literal["a"].literal["b"]
            .literal
            .contains_key("c"));
        assert_eq!(matched(&router, "a/b"), vec![2]);
        assert_eq!(matched(&router, "a/b/x"), vec![3]);
        assert_eq!(matched(&router, "a/b/c/d"), vec![4]);
        assert!(router.unsubscribe(&filter("a/+/c/#"), &4));
        assert!(router.root.literal["a"].plus.is_none());
        assert!(!router.unsubscribe(&filter("a/+/c/#"), &4));
        assert!(router.unsubscribe(&filter("a/b"), &2));
        assert!(router.unsubscribe(&filter("a/b/x"), &3));
        assert!(router.root.is_empty());
        assert!(router.is_empty());
    }

    #[test]
    fn branches_pop_last_in_first_out_across_the_spill() {
        let mut branches = Branches::new();
        for i in 0..INLINE * 3 {
            branches.push(i);
        }
        // Interleaved with pops, as a walk does.
        assert_eq!(branches.pop(), Some(INLINE * 3 - 1));
        branches.push(100);
        let mut order = Vec::new();
        while let Some(i) = branches.pop() {
            order.push(i);
        }
        let mut expected: Vec<usize> = (0..INLINE * 3 - 1).rev().collect();
        expected.insert(0, 100);
        assert_eq!(order, expected);
    }
}
