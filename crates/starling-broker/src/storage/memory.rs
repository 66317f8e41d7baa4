//! `MemoryStore`: the [`Store`] contract kept in memory. For tests, and for
//! `persistence false`, where the broker still goes through the same calls.
//! It keeps exactly what the SQLite engine keeps, with the same rules (a
//! message is deleted with its last reference; rows for a session that is not
//! stored are ignored), so one test body checks both.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use parking_lot::Mutex;
use starling_proto::{MqttString, PacketId, TopicName};

use super::{
    Change, LoadedSession, MessageId, Snapshot, Store, StoreError, StoredDelivery, StoredInflight,
    StoredMessage, StoredSession,
};

/// The in-memory engine.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    messages: BTreeMap<MessageId, StoredMessage>,
    retained: BTreeMap<TopicName, MessageId>,
    sessions: BTreeMap<MqttString, Session>,
    /// How many retained, queue and in-flight rows refer to each message.
    refs: HashMap<MessageId, usize>,
    /// Orders queue and in-flight entries as SQLite's row ids do.
    next_row: u64,
}

#[derive(Debug)]
struct Session {
    session: StoredSession,
    queue: BTreeMap<u64, StoredDelivery>,
    /// Where each queued message sits in `queue`.
    queued: HashMap<MessageId, u64>,
    inflight: BTreeMap<u64, StoredInflight>,
    /// Where each packet id sits in `inflight`.
    inflight_order: HashMap<PacketId, u64>,
    incoming_qos2: BTreeSet<PacketId>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl Store for MemoryStore {
    fn apply(&self, batch: &[Change]) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        let mut unreferenced = Vec::new();
        for change in batch {
            state.apply(change, &mut unreferenced);
        }
        state.collect(unreferenced);
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load(&self, now: SystemTime) -> Result<Snapshot, StoreError> {
        let mut state = self.state.lock();
        let expired_wills = state.expire(now);
        let sessions = state
            .sessions
            .values()
            .map(|s| LoadedSession {
                session: s.session.clone(),
                queue: s.queue.values().cloned().collect(),
                inflight: s.inflight.values().cloned().collect(),
                incoming_qos2: s.incoming_qos2.iter().copied().collect(),
            })
            .collect();
        let next_message_id = state
            .messages
            .keys()
            .next_back()
            .map_or(MessageId::default(), |id| MessageId(id.0 + 1));
        Ok(Snapshot {
            messages: state
                .messages
                .iter()
                .map(|(id, m)| (*id, m.clone()))
                .collect(),
            retained: state
                .retained
                .iter()
                .map(|(t, id)| (t.clone(), *id))
                .collect(),
            sessions,
            next_message_id,
            expired_wills,
        })
    }
}

impl State {
    fn apply(&mut self, change: &Change, unreferenced: &mut Vec<MessageId>) {
        let row = self.next_row;
        match change {
            Change::PutMessage(id, message) => {
                self.messages.entry(*id).or_insert_with(|| message.clone());
            }
            Change::PutRetained(topic, id) => {
                *self.refs.entry(*id).or_default() += 1;
                if let Some(old) = self.retained.insert(topic.clone(), *id) {
                    release(&mut self.refs, unreferenced, old);
                }
            }
            Change::RemoveRetained(topic) => {
                if let Some(old) = self.retained.remove(topic) {
                    release(&mut self.refs, unreferenced, old);
                }
            }
            Change::PutSession(session) => match self.sessions.get_mut(&session.client_id) {
                Some(entry) => entry.session = session.clone(),
                None => {
                    let entry = Session {
                        session: session.clone(),
                        queue: BTreeMap::new(),
                        queued: HashMap::new(),
                        inflight: BTreeMap::new(),
                        inflight_order: HashMap::new(),
                        incoming_qos2: BTreeSet::new(),
                    };
                    self.sessions.insert(session.client_id.clone(), entry);
                }
            },
            Change::RemoveSession(client) => {
                if let Some(entry) = self.sessions.remove(client) {
                    entry
                        .queue
                        .values()
                        .for_each(|d| release(&mut self.refs, unreferenced, d.message));
                    entry
                        .inflight
                        .values()
                        .for_each(|i| release(&mut self.refs, unreferenced, i.delivery.message));
                }
            }
            Change::Enqueue(client, delivery) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    if let Entry::Vacant(slot) = entry.queued.entry(delivery.message) {
                        slot.insert(row);
                        entry.queue.insert(row, delivery.clone());
                        *self.refs.entry(delivery.message).or_default() += 1;
                        self.next_row += 1;
                    }
                }
            }
            Change::Dequeue(client, id) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    if let Some(row) = entry.queued.remove(id) {
                        entry.queue.remove(&row);
                        release(&mut self.refs, unreferenced, *id);
                    }
                }
            }
            Change::PutInflight(client, inflight) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    *self.refs.entry(inflight.delivery.message).or_default() += 1;
                    let order = *entry
                        .inflight_order
                        .entry(inflight.packet_id)
                        .or_insert(row);
                    if order == row {
                        self.next_row += 1;
                    }
                    if let Some(old) = entry.inflight.insert(order, inflight.clone()) {
                        release(&mut self.refs, unreferenced, old.delivery.message);
                    }
                }
            }
            Change::RemoveInflight(client, packet_id) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    if let Some(order) = entry.inflight_order.remove(packet_id) {
                        if let Some(old) = entry.inflight.remove(&order) {
                            release(&mut self.refs, unreferenced, old.delivery.message);
                        }
                    }
                }
            }
            Change::PutIncomingQos2(client, packet_id) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    entry.incoming_qos2.insert(*packet_id);
                }
            }
            Change::RemoveIncomingQos2(client, packet_id) => {
                if let Some(entry) = self.sessions.get_mut(client) {
                    entry.incoming_qos2.remove(packet_id);
                }
            }
        }
    }

    /// Deletes those of `candidates` that nothing refers to any more.
    fn collect(&mut self, candidates: Vec<MessageId>) {
        for id in candidates {
            if self.refs.get(&id).map_or(true, |n| *n == 0) {
                self.refs.remove(&id);
                self.messages.remove(&id);
            }
        }
    }

    /// Removes what expired at `now`; returns the wills of the sessions that did.
    fn expire(&mut self, now: SystemTime) -> Vec<super::StoredWill> {
        let mut unreferenced = Vec::new();
        let expired: Vec<MqttString> = self
            .sessions
            .values()
            .filter(|s| s.session.is_expired(now))
            .map(|s| s.session.client_id.clone())
            .collect();
        let mut wills = Vec::new();
        for client in expired {
            if let Some(will) = self
                .sessions
                .get(&client)
                .and_then(|s| s.session.will.clone())
            {
                wills.push(will);
            }
            self.apply(&Change::RemoveSession(client), &mut unreferenced);
        }
        let stale: BTreeSet<MessageId> = self
            .messages
            .iter()
            .filter(|(_, m)| m.is_expired(now))
            .map(|(id, _)| *id)
            .collect();
        let mut changes = Vec::new();
        for (topic, id) in &self.retained {
            if stale.contains(id) {
                changes.push(Change::RemoveRetained(topic.clone()));
            }
        }
        for (client, entry) in &self.sessions {
            for id in entry.queued.keys().filter(|id| stale.contains(id)) {
                changes.push(Change::Dequeue(client.clone(), *id));
            }
        }
        for change in &changes {
            self.apply(change, &mut unreferenced);
        }
        unreferenced.extend(self.messages.keys().copied());
        self.collect(unreferenced);
        wills
    }
}

/// One reference to `id` fewer; it may have been the last.
fn release(refs: &mut HashMap<MessageId, usize>, unreferenced: &mut Vec<MessageId>, id: MessageId) {
    if let Some(n) = refs.get_mut(&id) {
        *n -= 1;
    }
    unreferenced.push(id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::{message, session};

    #[test]
    fn a_message_goes_with_its_last_reference() {
        let store = MemoryStore::new();
        let now = SystemTime::now();
        let (a, b) = (MqttString::from_static("a"), MqttString::from_static("b"));
        let id = MessageId(7);
        let delivery = crate::storage::tests::delivery(id);
        store
            .apply(&[
                Change::PutSession(session("a")),
                Change::PutSession(session("b")),
                Change::PutMessage(id, message("t", None)),
                Change::Enqueue(a.clone(), delivery.clone()),
                Change::Enqueue(b.clone(), delivery),
            ])
            .unwrap();
        store.apply(&[Change::Dequeue(a, id)]).unwrap();
        assert_eq!(store.load(now).unwrap().messages.len(), 1);
        store.apply(&[Change::Dequeue(b, id)]).unwrap();
        assert!(store.load(now).unwrap().messages.is_empty());
    }
}
