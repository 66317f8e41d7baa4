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

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use starling_proto::{MqttString, ReasonCode};
use tokio::sync::watch;

use super::{
    Change, Durability, MessageId, Store, StoreError, StoredDelivery, StoredInflight,
    StoredMessage, StoredSession,
};
use crate::message::{Delivery, Message};
use crate::session::SessionChange;

/// How long the writer waits before it tries a failed batch again.
pub const RETRY: Duration = Duration::from_millis(500);

/// One change the broker hands to the writer.
#[derive(Debug)]
pub enum Op {
    /// Stores or replaces a session (subscriptions, expiry, will).
    Session(StoredSession),
    /// Forgets a session and all it held.
    EndSession(MqttString),
    /// A retained message, or (empty payload) the end of one.
    Retain(Arc<Message>),
    /// One session's changes, in order.
    Changes(MqttString, Vec<SessionChange>),
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

    /// Hands an op to the writer; returns its sequence number.
    pub fn push(&self, op: Op) -> u64 {
        let mut pending = self.shared.pending.lock();
        pending.ops.push(op);
        pending.last += 1;
        let seq = pending.last;
        self.shared.submitted.store(seq, Ordering::Release);
        if pending.ops.len() == 1 {
            self.shared.wake.notify_one();
        }
        seq
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
        loop {
            let (ops, seq, closing) = {
                let mut pending = self.pending.lock();
                loop {
                    if !pending.ops.is_empty() || pending.closing {
                        break;
                    }
                    if !carried.is_empty() {
                        // Failing: wait a little, then try the batch again.
                        self.wake.wait_for(&mut pending, RETRY);
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
                (
                    std::mem::take(&mut pending.ops),
                    pending.last,
                    pending.closing,
                )
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
                        if self.failing.swap(0, Ordering::Relaxed) != 0 {
                            tracing::warn!(
                                "The store can be written again; accepting QoS 1 and 2 messages."
                            );
                        }
                    }
                    Err(e) => {
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
            if periodic.is_some_and(|every| last_sync.elapsed() >= every) || (closing && unsynced)
            {
                if let Err(e) = self.store.sync() {
                    tracing::error!("Error: {e}");
                }
                last_sync = Instant::now();
                unsynced = false;
            }
            if closing && self.pending.lock().ops.is_empty() {
                return;
            }
        }
    }

    /// Turns ops into the store's changes: gives messages their ids and stores
    /// each message once per batch (a message already stored is not written
    /// again: `PutMessage` of a known id changes nothing).
    fn translate(&self, ops: Vec<Op>, out: &mut Vec<Change>) {
        if ops.is_empty() {
            return;
        }
        let clock = Clock::now();
        let mut written: HashSet<MessageId> = HashSet::new();
        let mut message = |m: &Arc<Message>, out: &mut Vec<Change>| -> MessageId {
            let id = *m
                .stored_id
                .get_or_init(|| MessageId(self.next_message.fetch_add(1, Ordering::Relaxed)));
            if written.insert(id) {
                out.push(Change::PutMessage(id, clock.stored_message(m)));
            }
            id
        };
        for op in ops {
            match op {
                Op::Session(session) => out.push(Change::PutSession(session)),
                Op::EndSession(client) => out.push(Change::RemoveSession(client)),
                Op::Retain(m) if m.payload.is_empty() => {
                    out.push(Change::RemoveRetained(m.topic.clone()))
                }
                Op::Retain(m) => {
                    let id = message(&m, out);
                    out.push(Change::PutRetained(m.topic.clone(), id));
                }
                Op::Changes(client, changes) => {
                    for change in changes {
                        match change {
                            SessionChange::Enqueued(d) => {
                                let id = message(&d.message, out);
                                out.push(Change::Enqueue(client.clone(), stored_delivery(id, d)));
                            }
                            SessionChange::Dequeued(m) => {
                                if let Some(&id) = m.stored_id.get() {
                                    out.push(Change::Dequeue(client.clone(), id));
                                }
                            }
                            SessionChange::Inflight(packet_id, state, d) => {
                                let id = message(&d.message, out);
                                out.push(Change::PutInflight(
                                    client.clone(),
                                    StoredInflight {
                                        packet_id,
                                        state,
                                        delivery: stored_delivery(id, d),
                                    },
                                ));
                            }
                            SessionChange::InflightEnded(id) => {
                                out.push(Change::RemoveInflight(client.clone(), id))
                            }
                            SessionChange::Qos2Received(id) => {
                                out.push(Change::PutIncomingQos2(client.clone(), id))
                            }
                            SessionChange::Qos2Released(id) => {
                                out.push(Change::RemoveIncomingQos2(client.clone(), id))
                            }
                        }
                    }
                }
            }
        }
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
            properties: m.properties.clone(),
            expires_at: m.expires_at.map(|at| self.to_system(at)),
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
            properties: m.properties,
            expires_at: m.expires_at.map(|at| self.to_instant(at)),
            origin: None,
            stored_id,
        }
    }
}
