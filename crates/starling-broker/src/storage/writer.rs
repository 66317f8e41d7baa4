//! `Persistence`: the broker's one writer to its [`Store`]. Connections hand it
//! what changed ([`Op`]) while they hold the lock of the state that changed, so
//! the store sees each session's changes in order; a thread of its own takes
//! everything handed in since its last commit and applies it as one batch, one
//! transaction and (with [`Durability::Sync`]) one fsync: group commit.
//!
//! Every op gets a sequence number. [`Persistence::durable`] waits until the
//! batch holding a number is applied (with `Sync`: on disk); a connection
//! waits on it before it sends an acknowledgement that promises the message is
//! kept (PUBACK, PUBREC, PUBCOMP, SUBACK, ...), so an acknowledged message is
//! never lost by a crash.
//!
//! When a batch cannot be written (disk full, I/O error), the writer keeps it
//! and tries again every [`RETRY`], with whatever came in since appended;
//! meanwhile [`Persistence::failing`] tells connections to refuse QoS 1 and 2
//! messages, and the ones already waiting wait on. Nothing is acknowledged that
//! is not stored, and nothing stored is left out when the disk has room again.
//!
//! This is also where broker messages get their store ids and where `Instant`s
//! become wall-clock times: the store never sees either.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use starling_proto::{MqttString, PacketId, ReasonCode};
use tokio::sync::watch;

use super::{
    Change, Durability, MessageId, Store, StoreError, StoredDelivery, StoredInflight,
    StoredMessage, StoredSession,
};
use crate::message::{Delivery, Message};
use crate::session::{OutboundState, SessionChange};

/// How long the writer waits before it tries a failed batch again.
pub const RETRY: Duration = Duration::from_millis(500);

/// How often, at most, deleted rows' space is given back.
const COMPACT_EVERY: Duration = Duration::from_secs(30);

/// One change the broker hands to the writer.
#[derive(Debug)]
pub enum Op {
    /// Stores or replaces a session (subscriptions, expiry, will).
    Session(Box<StoredSession>),
    /// Forgets a session and all it held.
    EndSession(MqttString),
    /// A retained message, or (empty payload) the end of one.
    Retain(Arc<Message>),
    /// One session's changes, in order.
    Changes(MqttString, Vec<SessionChange>),
}

thread_local! {
    /// The sequence number of the last op this thread pushed, until taken.
    static PUSHED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The sequence number of the last op pushed on this thread since the last
/// call (0: none). A connection handles a packet without an `.await`, so the
/// ops its handling caused are the ones its thread pushed meanwhile: waiting
/// for this number, and not the latest of every connection, keeps one
/// client's acknowledgements from waiting on others' writes.
pub fn take_pushed() -> u64 {
    PUSHED.with(|pushed| pushed.replace(0))
}

/// Counters for `$SYS`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Batches committed.
    pub batches: AtomicU64,
    /// Changes committed.
    pub changes: AtomicU64,
    /// Duration of the last commit (with `Sync`, the fsync), microseconds.
    pub last_commit_us: AtomicU64,
    /// Longest commit so far, microseconds.
    pub max_commit_us: AtomicU64,
    /// Batches that failed (and were tried again).
    pub failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    ops: Vec<Op>,
    /// Sequence number of the last op pushed.
    last: u64,
    closing: bool,
    /// Each open [`Group`] by its number, with the first sequence number it
    /// holds back: the writer takes nothing from there on until it ends.
    open: Vec<(u64, u64)>,
    /// The number of the next group.
    next_group: u64,
}

impl Pending {
    /// How many ops, from the front, the writer may take now.
    fn takeable(&self) -> usize {
        let first = self.last + 1 - self.ops.len() as u64;
        match self.open.iter().map(|&(_, start)| start).min() {
            Some(start) if !self.closing => {
                (start.saturating_sub(first) as usize).min(self.ops.len())
            }
            _ => self.ops.len(),
        }
    }

    /// Opens a group at the next op; its number.
    fn open_group(&mut self) -> u64 {
        let group = self.next_group;
        self.next_group += 1;
        self.open.push((group, self.last + 1));
        group
    }

    /// Ends group `group`. Its ops are not free yet if a group opened after
    /// it is still open: that group holds back only from its own start, and
    /// this one's ops on both sides of that start must not be split across
    /// two commits. So the groups still open that started after this one
    /// now hold back from this one's start: the two commit together.
    fn close_group(&mut self, group: u64) {
        let Some(i) = self.open.iter().position(|&(g, _)| g == group) else {
            return;
        };
        let (_, start) = self.open.swap_remove(i);
        for (_, later) in &mut self.open {
            *later = (*later).min(start);
        }
    }
}

/// Ops pushed while a group is open (by its holder, and by anyone else
/// meanwhile) are committed in one batch, never split by a commit: what must
/// be stored together, or not at all, is pushed inside one. A QoS 2 PUBLISH
/// is: its packet identifier and its copies in the queues it was routed to
/// (otherwise a crash between them either loses the message, the resend being
/// taken for a duplicate, or delivers it twice).
#[derive(Debug)]
pub struct Group<'a> {
    persistence: &'a Persistence,
    number: u64,
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        let mut pending = self.persistence.shared.pending.lock();
        pending.close_group(self.number);
        if pending.takeable() > 0 {
            self.persistence.shared.wake.notify_one();
        }
    }
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn Store>,
    durability: Durability,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The last sequence number applied (durable with `Sync`).
    durable: watch::Sender<u64>,
    /// Mirror of `Pending::last`, readable without the lock.
    submitted: AtomicU64,
    /// 0: writing; else the reason code to refuse QoS 1/2 messages with.
    failing: AtomicU8,
    next_message: AtomicU64,
    stats: StoreStats,
}

/// The writer: a queue of ops and the thread that applies them.
#[derive(Debug)]
pub struct Persistence {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Persistence {
    /// Starts the writer thread for `store`; message ids start at `next_message`
    /// (from the store's snapshot).
    pub fn start(
        store: Arc<dyn Store>,
        durability: Durability,
        next_message: MessageId,
    ) -> Persistence {
        let shared = Arc::new(Shared {
            store,
            durability,
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            durable: watch::Sender::new(0),
            submitted: AtomicU64::new(0),
            failing: AtomicU8::new(0),
            next_message: AtomicU64::new(next_message.0),
            stats: StoreStats::default(),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("starling-store".into())
            .spawn(move || writer.run())
            .expect("cannot start the store writer thread");
        Persistence {
            shared,
            thread: Mutex::new(Some(thread)),
        }
    }

    /// Hands an op to the writer; returns its sequence number, which is also
    /// kept for [`take_pushed`] on this thread.
    pub fn push(&self, op: Op) -> u64 {
        let mut pending = self.shared.pending.lock();
        pending.ops.push(op);
        pending.last += 1;
        let seq = pending.last;
        PUSHED.with(|pushed| pushed.set(seq));
        self.shared.submitted.store(seq, Ordering::Release);
        if pending.ops.len() == 1 {
            self.shared.wake.notify_one();
        }
        seq
    }

    /// Opens a [`Group`]: ops pushed until it is dropped are committed together.
    pub fn group(&self) -> Group<'_> {
        let number = self.shared.pending.lock().open_group();
        Group {
            persistence: self,
            number,
        }
    }

    /// The sequence number of the last op pushed, by anyone.
    pub fn submitted(&self) -> u64 {
        self.shared.submitted.load(Ordering::Acquire)
    }

    /// Waits until the op numbered `seq` (and every op before it) is applied.
    pub async fn durable(&self, seq: u64) {
        let mut applied = self.shared.durable.subscribe();
        // The sender lives as long as `self`.
        let _ = applied.wait_for(|&done| done >= seq).await;
    }

    /// Whether the last batch failed: the reason code for a v5 client's
    /// refused PUBACK or PUBREC (0x97 Quota exceeded for a full disk, 0x80
    /// otherwise).
    pub fn failing(&self) -> Option<ReasonCode> {
        match self.shared.failing.load(Ordering::Relaxed) {
            0 => None,
            code => Some(ReasonCode(code)),
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    /// Bytes the store takes on disk (`None` in memory).
    pub fn store_size(&self) -> Option<u64> {
        self.shared.store.size()
    }

    /// The durability in force.
    pub fn durability(&self) -> Durability {
        self.shared.durability
    }

    /// Applies everything pushed so far and stops the writer. A batch that
    /// cannot be written is tried a few more times, then given up with an error.
    pub fn close(&self) {
        self.shared.pending.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Persistence {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    fn run(&self) {
        let periodic = match self.durability {
            Durability::Periodic(every) => Some(every),
            _ => None,
        };
        let mut last_sync = Instant::now();
        let mut unsynced = false;
        let mut carried: Vec<Change> = Vec::new();
        let mut carried_seq = 0;
        let mut failed_closing = 0;
        let mut last_compact = Instant::now();
        // After a failed batch: when to try it again.
        let mut retry_at: Option<Instant> = None;
        loop {
            let (ops, seq, closing) = {
                let mut pending = self.pending.lock();
                loop {
                    if pending.closing {
                        break;
                    }
                    if let Some(at) = retry_at {
                        // Failing: the batch is tried again every RETRY, however
                        // much comes in meanwhile.
                        let left = at.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        self.wake.wait_for(&mut pending, left);
                        continue;
                    }
                    if pending.takeable() > 0 {
                        break;
                    }
                    match periodic.filter(|_| unsynced) {
                        Some(every) => {
                            let left = every.saturating_sub(last_sync.elapsed());
                            if left.is_zero() {
                                break;
                            }
                            self.wake.wait_for(&mut pending, left);
                        }
                        None => self.wake.wait(&mut pending),
                    }
                }
                let take = pending.takeable();
                let taken_last = pending.last - (pending.ops.len() - take) as u64;
                let ops: Vec<Op> = if take == pending.ops.len() {
                    std::mem::take(&mut pending.ops)
                } else {
                    pending.ops.drain(..take).collect()
                };
                (ops, taken_last, pending.closing)
            };
            self.translate(ops, &mut carried);
            carried_seq = carried_seq.max(seq);
            if !carried.is_empty() {
                let started = Instant::now();
                match self.store.apply(&carried) {
                    Ok(()) => {
                        let took = started.elapsed().as_micros() as u64;
                        self.stats.batches.fetch_add(1, Ordering::Relaxed);
                        self.stats
                            .changes
                            .fetch_add(carried.len() as u64, Ordering::Relaxed);
                        self.stats.last_commit_us.store(took, Ordering::Relaxed);
                        self.stats.max_commit_us.fetch_max(took, Ordering::Relaxed);
                        carried.clear();
                        unsynced = true;
                        retry_at = None;
                        if self.failing.swap(0, Ordering::Relaxed) != 0 {
                            tracing::warn!(
                                "The store can be written again; accepting QoS 1 and 2 messages."
                            );
                        }
                    }
                    Err(e) => {
                        retry_at = Some(Instant::now() + RETRY);
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        let code = match e {
                            StoreError::Full { .. } => ReasonCode::QUOTA_EXCEEDED,
                            _ => ReasonCode::UNSPECIFIED_ERROR,
                        };
                        if self.failing.swap(code.0, Ordering::Relaxed) == 0 {
                            tracing::error!(
                                "Error: {e}; refusing QoS 1 and 2 messages until it can be written."
                            );
                        }
                        if closing {
                            failed_closing += 1;
                            if failed_closing >= 3 {
                                tracing::error!(
                                    "Error: {e}; {} changes could not be stored at shutdown.",
                                    carried.len()
                                );
                                return;
                            }
                            std::thread::sleep(RETRY);
                        }
                        continue;
                    }
                }
            }
            // The batch is applied: whoever waits on it may go on.
            self.durable.send_replace(carried_seq);
            if periodic.is_some_and(|every| last_sync.elapsed() >= every) || (closing && unsynced) {
                if let Err(e) = self.store.sync() {
                    tracing::error!("Error: {e}");
                }
                last_sync = Instant::now();
                unsynced = false;
            }
            if last_compact.elapsed() >= COMPACT_EVERY {
                if let Err(e) = self.store.compact() {
                    tracing::warn!("Warning: {e}");
                }
                last_compact = Instant::now();
            }
            if closing && self.pending.lock().ops.is_empty() {
                return;
            }
        }
    }

    /// Turns ops into the store's changes, giving messages their ids.
    ///
    /// Within one batch, what undoes itself is left out: a message queued and
    /// taken from the queue again, or a flow started and ended (an online
    /// subscriber that acknowledged before the batch was written), costs no
    /// write at all; a flow's earlier states are overwritten by its last. A
    /// message is stored (`PutMessage`, which changes nothing for an id already
    /// stored) only ahead of a change that still refers to it.
    fn translate(&self, ops: Vec<Op>, out: &mut Vec<Change>) {
        if ops.is_empty() {
            return;
        }
        let clock = Clock::now();
        let mut batch = Batch::default();
        let id_of = |m: &Arc<Message>, batch: &mut Batch| -> MessageId {
            let id = *m
                .stored_id
                .get_or_init(|| MessageId(self.next_message.fetch_add(1, Ordering::Relaxed)));
            batch.messages.entry(id).or_insert_with(|| Arc::clone(m));
            id
        };
        for op in ops {
            match op {
                Op::Session(session) => {
                    batch.push(Change::PutSession(*session));
                }
                Op::EndSession(client) => {
                    batch.push(Change::RemoveSession(client));
                }
                Op::Retain(m) if m.payload.is_empty() => {
                    batch.push(Change::RemoveRetained(m.topic.clone()));
                }
                Op::Retain(m) => {
                    let id = id_of(&m, &mut batch);
                    batch.push(Change::PutRetained(m.topic.clone(), id));
                }
                Op::Changes(client, changes) => {
                    for change in changes {
                        match change {
                            SessionChange::Enqueued(d) => {
                                let id = id_of(&d.message, &mut batch);
                                let at = batch
                                    .push(Change::Enqueue(client.clone(), stored_delivery(id, d)));
                                batch.queued.insert((client.clone(), id), at);
                            }
                            SessionChange::Dequeued(m) => {
                                let Some(&id) = m.stored_id.get() else {
                                    continue;
                                };
                                match batch.queued.remove(&(client.clone(), id)) {
                                    Some(at) => batch.changes[at] = None,
                                    None => {
                                        batch.push(Change::Dequeue(client.clone(), id));
                                    }
                                }
                            }
                            SessionChange::Inflight(packet_id, state, d) => {
                                let id = id_of(&d.message, &mut batch);
                                let key = (client.clone(), packet_id);
                                // A flow starts on an identifier the store holds
                                // no row for (after the changes before it).
                                let starts = state != OutboundState::AwaitingPubComp;
                                let fresh = match batch.inflight.remove(&key) {
                                    Some((at, fresh)) => {
                                        batch.changes[at] = None;
                                        fresh || starts
                                    }
                                    None => starts,
                                };
                                let at = batch.push(Change::PutInflight(
                                    client.clone(),
                                    StoredInflight {
                                        packet_id,
                                        state,
                                        delivery: stored_delivery(id, d),
                                    },
                                ));
                                batch.inflight.insert(key, (at, fresh));
                            }
                            SessionChange::InflightEnded(packet_id) => {
                                match batch.inflight.remove(&(client.clone(), packet_id)) {
                                    Some((at, true)) => batch.changes[at] = None,
                                    Some((at, false)) => {
                                        batch.changes[at] = None;
                                        batch.push(Change::RemoveInflight(
                                            client.clone(),
                                            packet_id,
                                        ));
                                    }
                                    None => {
                                        batch.push(Change::RemoveInflight(
                                            client.clone(),
                                            packet_id,
                                        ));
                                    }
                                }
                            }
                            SessionChange::Qos2Received(id) => {
                                batch.push(Change::PutIncomingQos2(client.clone(), id));
                            }
                            SessionChange::Qos2Released(id) => {
                                batch.push(Change::RemoveIncomingQos2(client.clone(), id));
                            }
                        }
                    }
                }
            }
            // A session that ends takes its rows with it: later changes of a
            // new session of the same client must not cancel against them.
            if let Some(Some(Change::RemoveSession(client))) = batch.changes.last() {
                let client = client.clone();
                batch.queued.retain(|(c, _), _| *c != client);
                batch.inflight.retain(|(c, _), _| *c != client);
            }
        }
        let mut written: HashSet<MessageId> = HashSet::new();
        for change in batch.changes.into_iter().flatten() {
            let refers = match &change {
                Change::Enqueue(_, d) => Some(d.message),
                Change::PutInflight(_, i) => Some(i.delivery.message),
                Change::PutRetained(_, id) => Some(*id),
                _ => None,
            };
            if let Some(id) = refers.filter(|&id| written.insert(id)) {
                out.push(Change::PutMessage(
                    id,
                    clock.stored_message(&batch.messages[&id]),
                ));
            }
            out.push(change);
        }
    }
}

/// One batch being translated: its changes (`None`: cancelled) and where the
/// ones that may still cancel sit.
#[derive(Default)]
struct Batch {
    changes: Vec<Option<Change>>,
    messages: HashMap<MessageId, Arc<Message>>,
    /// Enqueues of this batch, by session and message.
    queued: HashMap<(MqttString, MessageId), usize>,
    /// The last in-flight put of this batch, by session and packet identifier,
    /// and whether the flow started in this batch (no row before it).
    inflight: HashMap<(MqttString, PacketId), (usize, bool)>,
}

impl Batch {
    fn push(&mut self, change: Change) -> usize {
        self.changes.push(Some(change));
        self.changes.len() - 1
    }
}

fn stored_delivery(message: MessageId, d: Delivery) -> StoredDelivery {
    StoredDelivery {
        message,
        qos: d.qos,
        retain: d.retain,
        subscription_ids: d.subscription_ids,
        shared: d.shared,
    }
}

/// One reading of both clocks, to turn `Instant`s into wall-clock times and back.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// The monotonic clock.
    pub instant: Instant,
    /// The wall clock at the same moment.
    pub system: SystemTime,
}

impl Clock {
    /// Both clocks now.
    pub fn now() -> Clock {
        Clock {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }

    /// `at` on the wall clock.
    pub fn to_system(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.instant) {
            Some(ahead) => self.system + ahead,
            None => self.system - (self.instant - at),
        }
    }

    /// `at` on the monotonic clock.
    pub fn to_instant(&self, at: SystemTime) -> Instant {
        match at.duration_since(self.system) {
            Ok(ahead) => self.instant + ahead,
            Err(behind) => self
                .instant
                .checked_sub(behind.duration())
                .unwrap_or(self.instant),
        }
    }

    /// A broker message as the store keeps it.
    pub fn stored_message(&self, m: &Message) -> StoredMessage {
        StoredMessage {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: m.qos,
            retain: m.retain,
            properties: (*m.properties).clone(),
            expires_at: m.expires_at.map(|at| self.to_system(at)),
            publisher: m.publisher.as_deref().cloned(),
        }
    }

    /// A stored message back in the broker, with its store id.
    pub fn message(&self, id: MessageId, m: StoredMessage) -> Message {
        let stored_id = std::sync::OnceLock::new();
        let _ = stored_id.set(id);
        Message {
            topic: m.topic,
            payload: m.payload,
            qos: m.qos,
            retain: m.retain,
            properties: m.properties.into(),
            expires_at: m.expires_at.map(|at| self.to_instant(at)),
            origin: None,
            publisher: m.publisher.map(Arc::new),
            stored_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use starling_proto::{QoS, TopicName};

    use super::*;
    use crate::storage::MemoryStore;

    fn message(payload: &'static str) -> Arc<Message> {
        Arc::new(Message {
            topic: TopicName::from_static("t"),
            payload: Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
            expires_at: None,
            origin: None,
            publisher: None,
            stored_id: Default::default(),
        })
    }

    fn delivery(message: &Arc<Message>) -> Delivery {
        Delivery {
            message: Arc::clone(message),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
            stored: true,
        }
    }

    fn client() -> MqttString {
        MqttString::from_static("c")
    }

    fn pid(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    fn translated(ops: Vec<Op>) -> Vec<Change> {
        let writer =
            Persistence::start(Arc::new(MemoryStore::new()), Durability::Off, MessageId(1));
        let mut out = Vec::new();
        writer.shared.translate(ops, &mut out);
        out
    }

    #[test]
    fn a_message_queued_and_sent_in_one_batch_costs_no_write() {
        let m = message("a");
        let id = pid(1);
        let out = translated(vec![Op::Changes(
            client(),
            vec![
                SessionChange::Enqueued(delivery(&m)),
                SessionChange::Dequeued(Arc::clone(&m)),
                SessionChange::Inflight(id, OutboundState::AwaitingPubAck, delivery(&m)),
                SessionChange::InflightEnded(id),
            ],
        )]);
        assert_eq!(out, Vec::new());
    }

    #[test]
    fn a_qos2_flow_keeps_only_its_last_state_and_its_message_once() {
        let m = message("a");
        let id = pid(7);
        let out = translated(vec![Op::Changes(
            client(),
            vec![
                SessionChange::Inflight(id, OutboundState::AwaitingPubRec, delivery(&m)),
                SessionChange::Inflight(id, OutboundState::AwaitingPubComp, delivery(&m)),
            ],
        )]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[0], Change::PutMessage(..)));
        assert!(matches!(
            &out[1],
            Change::PutInflight(_, i) if i.state == OutboundState::AwaitingPubComp
        ));
    }

    #[test]
    fn ending_a_flow_stored_in_an_earlier_batch_is_written() {
        let m = message("a");
        let id = pid(3);
        let out = translated(vec![Op::Changes(
            client(),
            vec![
                // PUBREC of a flow stored before this batch, then PUBCOMP.
                SessionChange::Inflight(id, OutboundState::AwaitingPubComp, delivery(&m)),
                SessionChange::InflightEnded(id),
            ],
        )]);
        assert_eq!(out, vec![Change::RemoveInflight(client(), id)]);
    }

    #[test]
    fn a_dequeue_of_an_earlier_batch_is_written_and_a_new_session_does_not_cancel() {
        let m = message("a");
        let _ = m.stored_id.set(MessageId(42));
        let out = translated(vec![
            Op::Changes(client(), vec![SessionChange::Enqueued(delivery(&m))]),
            Op::EndSession(client()),
            Op::Changes(client(), vec![SessionChange::Dequeued(Arc::clone(&m))]),
        ]);
        assert!(matches!(out[0], Change::PutMessage(MessageId(42), _)));
        assert!(matches!(out[1], Change::Enqueue(..)));
        assert_eq!(out[2], Change::RemoveSession(client()));
        assert_eq!(out[3], Change::Dequeue(client(), MessageId(42)));
    }

    #[test]
    fn the_writer_never_takes_part_of_an_open_group() {
        let op = || Op::EndSession(client());
        let mut pending = Pending::default();
        for _ in 0..3 {
            pending.ops.push(op());
            pending.last += 1;
        }
        // A group opened after op 3: ops 4 and 5 belong to it.
        let group = pending.open_group();
        for _ in 0..2 {
            pending.ops.push(op());
            pending.last += 1;
        }
        assert_eq!(pending.takeable(), 3, "everything before the group");
        pending.ops.drain(..3);
        assert_eq!(pending.takeable(), 0, "nothing of the open group");
        pending.close_group(group);
        assert_eq!(pending.takeable(), 2, "the whole group once it ends");
        pending.open_group();
        pending.closing = true;
        assert_eq!(pending.takeable(), 2, "at shutdown, everything");
    }

    /// The crash test's loss (issue 17), without its timing luck: a QoS 2
    /// PUBLISH's group pushes its packet identifier, another connection opens
    /// a group, the first pushes its routed copies and ends. The identifier
    /// must not be committed without the copies while the second group is
    /// open: a crash then keeps the identifier, the resend is taken for a
    /// duplicate and the message is lost [MQTT-4.3.3-10]. Before the fix the
    /// writer took the identifier alone here (`takeable` was 1).
    #[test]
    fn a_group_is_not_split_by_a_group_opened_inside_it() {
        let op = || Op::EndSession(client());
        let mut pending = Pending::default();
        let push = |pending: &mut Pending| {
            pending.ops.push(op());
            pending.last += 1;
        };
        let publisher = pending.open_group();
        push(&mut pending); // 1: the inbound QoS 2 identifier
        let other = pending.open_group();
        push(&mut pending); // 2: the copies routed, pushed after `other` opened
        pending.close_group(publisher);
        assert_eq!(
            pending.takeable(),
            0,
            "the publisher's identifier must wait for its copies' group"
        );
        push(&mut pending); // 3: the other group's own op
        pending.close_group(other);
        assert_eq!(pending.takeable(), 3, "both groups, in one commit");
    }

    /// Three groups opened inside one another and ended in every order: no
    /// op is takeable while a group that holds it, or overlaps one that
    /// does, is open.
    #[test]
    fn overlapping_groups_commit_as_one_whatever_order_they_end_in() {
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let mut pending = Pending::default();
            let mut groups = Vec::new();
            for _ in 0..3 {
                groups.push(pending.open_group());
                pending.ops.push(Op::EndSession(client()));
                pending.last += 1;
            }
            for (ended, &g) in order.iter().enumerate() {
                let expected = if ended == 2 { 3 } else { 0 };
                pending.close_group(groups[g]);
                assert_eq!(pending.takeable(), expected, "order {order:?}");
            }
        }
    }
}
