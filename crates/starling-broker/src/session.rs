//! `SessionState`: what MQTT calls the server's Session State for one client
//! (MQTT 5.0 §4.1): its subscriptions, the messages queued for it, the QoS 1 and 2
//! messages in flight to it, and the QoS 2 packet identifiers it sent us that
//! await PUBREL. Plain data with methods: no I/O, no clock, no locks; the broker
//! wraps it in a mutex per session.
//!
//! A session the store keeps (a persistent session, with the broker's storage
//! on) has a [`SessionRecord`]; every change to its queue, in-flight messages
//! and inbound QoS 2 identifiers is then also written down as a
//! [`SessionChange`], which the broker takes ([`SessionState::take_changes`])
//! and hands to the store while it still holds the session's lock, so the store
//! sees one session's changes in the order they happened.
//!
//! Queue policy (as Mosquitto's `max_queued_messages` / `max_queued_bytes`): when
//! the queue is full, the new message is dropped and counted. QoS 0 messages are
//! queued for an offline session only when `queue_qos0_messages` is set.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use starling_proto::{PacketId, QoS, TopicFilter};

use crate::message::{Delivery, Message};
use crate::router::Subscription;
use crate::storage::{SessionExpiry, StoredWill};

/// What the store knows of a persistent session beside its subscriptions,
/// queue and in-flight messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Its Session Expiry Interval.
    pub expiry: SessionExpiry,
    /// When its connection ended; `None` while one is attached.
    pub disconnected_at: Option<SystemTime>,
    /// The will of its connection (while attached), or the will waiting for
    /// its Will Delay Interval (once detached).
    pub will: Option<StoredWill>,
}

/// One change to a stored session's state, in the order it happened.
#[derive(Debug, Clone)]
pub enum SessionChange {
    /// A message was queued.
    Enqueued(Delivery),
    /// A stored message left the queue (sent or expired).
    Dequeued(Arc<Message>),
    /// An outbound QoS 1 or 2 message is in flight, or moved to a new state.
    Inflight(PacketId, OutboundState, Delivery),
    /// An outbound flow ended.
    InflightEnded(PacketId),
    /// An inbound QoS 2 message awaits PUBREL.
    Qos2Received(PacketId),
    /// PUBREL arrived.
    Qos2Released(PacketId),
}

/// Limits on one session's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most messages queued (beyond those in flight); `None` is unlimited.
    pub max_messages: Option<usize>,
    /// Most payload bytes queued; `None` is unlimited.
    pub max_bytes: Option<usize>,
    /// Queue QoS 0 messages while the client is offline.
    pub queue_qos0_offline: bool,
}

/// Where an outbound QoS 1 or 2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// QoS 1 PUBLISH sent, PUBACK awaited.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, PUBREC awaited.
    AwaitingPubRec,
    /// PUBREL sent, PUBCOMP awaited.
    AwaitingPubComp,
}

/// An outbound message in flight.
#[derive(Debug, Clone)]
pub struct Inflight {
    order: u64,
    /// The message.
    pub delivery: Delivery,
    /// Its place in the QoS flow.
    pub state: OutboundState,
}

/// What to send again when a session resumes [MQTT-4.4.0-1].
#[derive(Debug, Clone)]
pub enum Resend {
    /// The PUBLISH again, with DUP set.
    Publish(PacketId, Delivery),
    /// The PUBREL again.
    PubRel(PacketId),
}

/// Queued messages of an online client past which its publishers are slowed
/// ([`SessionState::is_backed_up`]).
pub const BACKLOG: usize = 1_000;

/// How long a backed-up client may take nothing from its queue before it
/// counts as stuck rather than slow ([`SessionState::slows_publishers`]).
pub const STUCK: Duration = Duration::from_secs(1);

/// Deliveries to a backed-up queue between two readings of the clock.
const RECHECK: u8 = 31;

/// `at` on a process-wide millisecond clock that wraps (after 49 days: only
/// differences are used) and is never 0.
fn millis(at: Instant) -> u32 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    let since = at.saturating_duration_since(base);
    // Not `as_millis`, whose 128-bit arithmetic costs more than the rest.
    (since
        .as_secs()
        .wrapping_mul(1000)
        .wrapping_add(u64::from(since.subsec_millis())) as u32)
        .max(1)
}

/// The result of offering a message to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued; the queue was empty before, so its connection should be woken.
    First,
    /// Queued behind others.
    Behind,
    /// Not queued: a QoS 0 message for an offline session.
    Skipped,
    /// Not queued: the queue is full. Counted in `dropped`; `first` when the
    /// previous offer was queued, so a log line can mark where dropping began.
    Dropped {
        /// The first drop since a message was last queued.
        first: bool,
    },
}

/// The server-side state of one session.
#[derive(Debug)]
pub struct SessionState {
    /// The session's subscriptions, as the client made them.
    pub subscriptions: HashMap<TopicFilter, Subscription, ProcessKeyed>,
    queue: VecDeque<Delivery>,
    queued_bytes: usize,
    inflight: HashMap<PacketId, Inflight, IdHashing>,
    /// What few sessions need: boxed, and made when first needed (64
    /// bytes in every session otherwise).
    rare: Option<Box<Rare>>,
    next_order: u64,
    next_packet_id: PacketId,
    /// The broker's, shared: 40 bytes in every session otherwise.
    limits: Arc<QueueLimits>,
    online: bool,
    /// Messages dropped because the queue was full.
    pub dropped: u64,
    /// Whether the last offer was dropped.
    dropping: bool,
    /// When (the process clock of [`millis`]; 0: not now) this online
    /// session's queue was last found backed up after it was not.
    backlog_since: u32,
    /// When its connection last took messages from the queue.
    progress_at: u32,
    /// Deliveries to a backed-up queue left before the clock is read again
    /// ([`Self::slows_publishers`] reuses `slow` meanwhile).
    recheck_in: u8,
    /// The last verdict of [`Self::slows_publishers_at`].
    slow: bool,
    /// `Some` while the store keeps this session. Boxed: most sessions have
    /// none.
    record: Option<Box<Kept>>,
    /// The attached connection's waker, while it waits ([`Self::poll_woken`]).
    waiter: Option<Waker>,
    /// Woken since the connection last looked: a delivery, or a flag to read
    /// (a takeover, a shutdown, a reload, its keep alive). Kept until it looks,
    /// as a `Notify` keeps a permit.
    woken: bool,
}

/// The parts of a session's state that few sessions use.
#[derive(Debug, Default)]
struct Rare {
    /// In-flight PUBLISHes not yet sent again since the session resumed,
    /// oldest first: they wait for room in the client's Receive Maximum.
    held: VecDeque<PacketId>,
    /// The QoS 2 PUBLISHes the client sent that await its PUBREL.
    incoming_qos2: HashSet<PacketId, IdHashing>,
}

/// What a session the store keeps has besides its state.
#[derive(Debug)]
struct Kept {
    record: SessionRecord,
    /// Changes not yet handed to the store.
    changes: Vec<SessionChange>,
}

/// Hashes packet identifiers, without the random keys (16 bytes in each map
/// of every session) that guard a map whose keys an attacker chooses from a
/// large set: a client has at most 65,535 identifiers, fewer in flight (its
/// and the broker's Receive Maximum), and the multiplication spreads
/// consecutive ones over distinct buckets.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

/// A map's hasher with random keys, as the standard library's, but the same
/// keys for every map of the process: a map then holds no keys of its own (16
/// bytes in every session), and its keys are still unknown to an attacker.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessKeyed;

impl std::hash::BuildHasher for ProcessKeyed {
    type Hasher = std::collections::hash_map::DefaultHasher;

    fn build_hasher(&self) -> Self::Hasher {
        static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
            std::sync::OnceLock::new();
        KEYS.get_or_init(Default::default).build_hasher()
    }
}

/// [`IdHasher`] as a map's hasher.
pub type IdHashing = std::hash::BuildHasherDefault<IdHasher>;

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u16(u16::from(byte) ^ (self.0 as u16).rotate_left(8));
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl SessionState {
    /// A new, empty session.
    pub fn new(limits: impl Into<Arc<QueueLimits>>) -> Self {
        SessionState {
            subscriptions: HashMap::default(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            inflight: HashMap::default(),
            rare: None,
            next_order: 0,
            next_packet_id: PacketId::MIN,
            limits: limits.into(),
            online: false,
            dropped: 0,
            dropping: false,
            backlog_since: 0,
            progress_at: 0,
            recheck_in: 0,
            slow: false,
            record: None,
            waiter: None,
            woken: false,
        }
    }

    /// Wakes the attached connection, or makes its next wait end at once:
    /// the waker to wake once the lock is released.
    #[must_use = "wake it once the lock is released"]
    pub fn wake(&mut self) -> Option<Waker> {
        self.woken = true;
        self.waiter.take()
    }

    /// Whether the connection was woken since it last looked (and then it
    /// is no longer); if not, `cx` is woken at the next [`Self::wake`].
    pub fn poll_woken(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if std::mem::take(&mut self.woken) {
            return Poll::Ready(());
        }
        if !self
            .waiter
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            self.waiter = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Forgets the waker of a connection that has ended, which would
    /// otherwise keep its task's memory.
    pub fn forget_waiter(&mut self) {
        self.waiter = None;
    }

    /// A stored session as the store gave it back at start-up: offline, with
    /// its queue, its in-flight messages in the order they were first sent and
    /// its inbound QoS 2 identifiers.
    pub fn restore(
        limits: Arc<QueueLimits>,
        record: SessionRecord,
        subscriptions: HashMap<TopicFilter, Subscription, ProcessKeyed>,
        queue: Vec<Delivery>,
        inflight: Vec<(PacketId, OutboundState, Delivery)>,
        incoming_qos2: Vec<PacketId>,
    ) -> Self {
        let mut state = SessionState::new(limits);
        state.subscriptions = subscriptions;
        state.queued_bytes = queue.iter().map(|d| d.message.payload.len()).sum();
        state.queue = queue.into_iter().collect();
        for (id, outbound, delivery) in inflight {
            let order = state.next_order;
            state.next_order += 1;
            state.inflight.insert(
                id,
                Inflight {
                    order,
                    delivery,
                    state: outbound,
                },
            );
            state.next_packet_id = id.next();
        }
        if !incoming_qos2.is_empty() {
            state.rare().incoming_qos2 = incoming_qos2.into_iter().collect();
        }
        state.set_record(Some(record));
        state
    }

    /// What the store knows of this session, if it keeps it.
    pub fn record(&self) -> Option<&SessionRecord> {
        self.record.as_deref().map(|kept| &kept.record)
    }

    /// Starts (`Some`) or stops (`None`) keeping the session in the store.
    /// Changes are recorded only while a record is set.
    pub fn set_record(&mut self, record: Option<SessionRecord>) {
        match (&mut self.record, record) {
            (Some(kept), Some(record)) => kept.record = record,
            (_, record) => {
                self.record = record.map(|record| {
                    Box::new(Kept {
                        record,
                        changes: Vec::new(),
                    })
                })
            }
        }
    }

    /// Changes the record, if there is one; returns whether there was.
    pub fn update_record(&mut self, f: impl FnOnce(&mut SessionRecord)) -> bool {
        match self.record.as_deref_mut() {
            Some(kept) => {
                f(&mut kept.record);
                true
            }
            None => false,
        }
    }

    /// The changes recorded since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<SessionChange> {
        self.record
            .as_deref_mut()
            .map(|kept| std::mem::take(&mut kept.changes))
            .unwrap_or_default()
    }

    /// Whether changes wait to be taken.
    pub fn has_changes(&self) -> bool {
        self.record
            .as_deref()
            .is_some_and(|kept| !kept.changes.is_empty())
    }

    fn record_change(&mut self, change: impl FnOnce() -> SessionChange) {
        if let Some(kept) = self.record.as_deref_mut() {
            kept.changes.push(change());
        }
    }

    /// A queued delivery left the queue: the store forgets it if it kept it.
    fn dequeued(&mut self, delivery: &Delivery) {
        if delivery.stored {
            self.record_change(|| SessionChange::Dequeued(Arc::clone(&delivery.message)));
        }
    }

    /// Whether a connection is attached.
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Whether the attached client has fallen behind: half its queue limit
    /// (at most [`BACKLOG`]) waits. The publishers that feed it are then read
    /// more slowly (`Broker::deliver`), rather than acknowledged at full speed
    /// until its queue overflows and drops what they were told was received.
    /// An offline session's queue is not a backlog: it waits for its client.
    pub fn is_backed_up(&self) -> bool {
        self.online
            && self.queue.len()
                >= self
                    .limits
                    .max_messages
                    .map_or(BACKLOG, |max| (max / 2).clamp(1, BACKLOG))
    }

    /// Whether a message just queued here should slow its publisher down:
    /// the queue is backed up ([`Self::is_backed_up`]) and its client is slow,
    /// not stuck. A client that took nothing from its queue for [`STUCK`]
    /// while it was backed up (its TCP window full: it does not read) is not
    /// waited for: slowing the publishers would slow every other subscriber
    /// of theirs, and its own queue is bounded by its limits (what does not
    /// fit is dropped, as for an offline client). The clock is read only
    /// while the queue is backed up.
    #[inline]
    pub fn slows_publishers(&mut self) -> bool {
        if !self.is_backed_up() {
            if self.backlog_since != 0 {
                self.backlog_since = 0;
                self.recheck_in = 0;
            }
            return false;
        }
        // The clock once every RECHECK deliveries: a backed-up queue gets
        // them at full speed, and a verdict a few messages old is as good.
        if self.recheck_in > 0 {
            self.recheck_in -= 1;
            return self.slow;
        }
        self.recheck_in = RECHECK;
        self.slow = self.slows_publishers_at(Instant::now());
        self.slow
    }

    /// [`Self::slows_publishers`] of a backed-up queue, at `now`.
    fn slows_publishers_at(&mut self, now: Instant) -> bool {
        let now = millis(now);
        if self.backlog_since == 0 {
            self.backlog_since = now;
        }
        let waited = now
            .wrapping_sub(self.backlog_since)
            .min(now.wrapping_sub(self.progress_at));
        waited < STUCK.as_millis() as u32
    }

    /// Its connection took messages from the queue at `now`.
    pub fn note_progress(&mut self, now: Instant) {
        self.progress_at = millis(now);
    }

    /// Marks the session attached to a connection or not.
    pub fn set_online(&mut self, online: bool) {
        self.online = online;
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Outbound QoS 1 and 2 messages awaiting acknowledgement.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    /// Offers a message to the session.
    pub fn enqueue(&mut self, mut delivery: Delivery) -> Enqueued {
        if !self.online && delivery.qos == QoS::AtMostOnce && !self.limits.queue_qos0_offline {
            return Enqueued::Skipped;
        }
        let size = delivery.message.payload.len();
        let full = self
            .limits
            .max_messages
            .is_some_and(|max| self.queue.len() >= max)
            || self
                .limits
                .max_bytes
                .is_some_and(|max| self.queued_bytes + size > max);
        if full {
            self.dropped += 1;
            let first = !std::mem::replace(&mut self.dropping, true);
            return Enqueued::Dropped { first };
        }
        self.dropping = false;
        self.queued_bytes += size;
        // An online client's QoS 0 message is not worth a write: it would be
        // lost with the connection anyway.
        delivery.stored =
            self.record.is_some() && (delivery.qos != QoS::AtMostOnce || !self.online);
        if let Some(kept) = self.record.as_deref_mut().filter(|_| delivery.stored) {
            kept.changes.push(SessionChange::Enqueued(delivery.clone()));
        }
        self.queue.push_back(delivery);
        if self.queue.len() == 1 {
            Enqueued::First
        } else {
            Enqueued::Behind
        }
    }

    /// Takes the next queued message that may be sent now: QoS 0 at any time,
    /// QoS 1 and 2 only while fewer than `window` are in flight (the client's
    /// Receive Maximum). Expired messages are discarded on the way
    /// [MQTT-3.3.2-5]. Order is kept: a QoS 0 message waits behind a QoS 1 one
    /// that waits for the window [MQTT-4.6.0-6].
    pub fn next_ready(&mut self, window: usize, now: Instant) -> Option<Delivery> {
        loop {
            let front = self.queue.front()?;
            if front.qos != QoS::AtMostOnce && self.inflight.len() >= window {
                return None;
            }
            let delivery = self.queue.pop_front()?;
            self.queued_bytes -= delivery.message.payload.len();
            self.dequeued(&delivery);
            if !delivery.message.is_expired(now) {
                return Some(delivery);
            }
        }
    }

    /// Records a QoS 1 or 2 message as sent and returns its packet identifier.
    pub fn start_inflight(&mut self, delivery: Delivery) -> PacketId {
        let id = self.allocate_packet_id();
        let state = if delivery.qos == QoS::ExactlyOnce {
            OutboundState::AwaitingPubRec
        } else {
            OutboundState::AwaitingPubAck
        };
        let order = self.next_order;
        self.next_order += 1;
        self.record_change(|| SessionChange::Inflight(id, state, delivery.clone()));
        self.inflight.insert(
            id,
            Inflight {
                order,
                delivery,
                state,
            },
        );
        id
    }

    fn allocate_packet_id(&mut self) -> PacketId {
        // Callers keep in-flight messages below the window (at most 65,535), so
        // a free identifier exists.
        let mut id = self.next_packet_id;
        while self.inflight.contains_key(&id) {
            id = id.next();
        }
        self.next_packet_id = id.next();
        id
    }

    /// PUBACK received: returns whether it matched a QoS 1 message in flight.
    pub fn handle_puback(&mut self, id: PacketId) -> bool {
        self.remove_if(id, OutboundState::AwaitingPubAck)
    }

    /// The state of the outbound message `id`, if one is in flight.
    pub fn inflight_state(&self, id: PacketId) -> Option<OutboundState> {
        self.inflight.get(&id).map(|entry| entry.state)
    }

    /// PUBREC received: returns whether a PUBREL must follow. A PUBREC with a
    /// failure reason (0x80 and above) ends the flow with no PUBREL
    /// (MQTT 5.0 §4.3.3).
    pub fn handle_pubrec(&mut self, id: PacketId, failed: bool) -> bool {
        match self.inflight.get_mut(&id) {
            Some(entry) if entry.state == OutboundState::AwaitingPubRec => {
                if failed {
                    self.inflight.remove(&id);
                    self.record_change(|| SessionChange::InflightEnded(id));
                    false
                } else {
                    entry.state = OutboundState::AwaitingPubComp;
                    let delivery = entry.delivery.clone();
                    self.record_change(|| {
                        SessionChange::Inflight(id, OutboundState::AwaitingPubComp, delivery)
                    });
                    true
                }
            }
            // A PUBREC for a PUBREL we already sent: answer with PUBREL again.
            Some(entry) => entry.state == OutboundState::AwaitingPubComp,
            None => false,
        }
    }

    /// PUBCOMP received: returns whether it ended a QoS 2 flow.
    pub fn handle_pubcomp(&mut self, id: PacketId) -> bool {
        self.remove_if(id, OutboundState::AwaitingPubComp)
    }

    fn remove_if(&mut self, id: PacketId, state: OutboundState) -> bool {
        if self.inflight.get(&id).is_some_and(|e| e.state == state) {
            self.inflight.remove(&id);
            self.record_change(|| SessionChange::InflightEnded(id));
            return true;
        }
        false
    }

    /// A QoS 2 PUBLISH arrived with `id`: returns whether it is new (to be
    /// routed) rather than a resend of one already received [MQTT-4.3.3-10].
    pub fn receive_qos2(&mut self, id: PacketId) -> bool {
        let new = self.rare().incoming_qos2.insert(id);
        if new {
            self.record_change(|| SessionChange::Qos2Received(id));
        }
        new
    }

    /// Inbound QoS 2 messages received and not yet released.
    pub fn incoming_qos2(&self) -> usize {
        self.rare
            .as_ref()
            .map_or(0, |rare| rare.incoming_qos2.len())
    }

    /// The rare parts, made if need be.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// PUBREL arrived: returns whether `id` was awaiting release.
    pub fn release_qos2(&mut self, id: PacketId) -> bool {
        let found = self
            .rare
            .as_mut()
            .is_some_and(|rare| rare.incoming_qos2.remove(&id));
        if found {
            self.record_change(|| SessionChange::Qos2Released(id));
        }
        found
    }

    /// What to send again on a resumed session, in the order first sent: every
    /// PUBREL, and the unacknowledged PUBLISHes that fit in the new
    /// connection's `window` (the client's Receive Maximum) beside the QoS 2
    /// flows awaiting PUBCOMP [MQTT-3.3.4-9]. The other PUBLISHes are held for
    /// [`Self::next_held`].
    pub fn resend(&mut self, window: usize) -> Vec<Resend> {
        let mut entries: Vec<(&PacketId, &Inflight)> = self.inflight.iter().collect();
        entries.sort_by_key(|(_, e)| e.order);
        let mut outstanding = entries
            .iter()
            .filter(|(_, e)| e.state == OutboundState::AwaitingPubComp)
            .count();
        let mut held = VecDeque::new();
        let mut resend = Vec::with_capacity(entries.len());
        for (&id, e) in entries {
            match e.state {
                OutboundState::AwaitingPubComp => resend.push(Resend::PubRel(id)),
                _ if outstanding < window => {
                    outstanding += 1;
                    resend.push(Resend::Publish(id, e.delivery.clone()));
                }
                _ => held.push_back(id),
            }
        }
        if !held.is_empty() {
            self.rare().held = held;
        } else if let Some(rare) = &mut self.rare {
            rare.held.clear();
        }
        resend
    }

    /// The oldest PUBLISH held back at resume, once `window` has room for it:
    /// to be sent again with its packet identifier [MQTT-4.4.0-1].
    pub fn next_held(&mut self, window: usize) -> Option<(PacketId, Delivery)> {
        let held = &mut self.rare.as_deref_mut()?.held;
        if held.is_empty() {
            return None;
        }
        // Acknowledged since (for a copy the client got before the reconnect)
        // or handed to another member of a shared group: no longer held.
        let inflight = &self.inflight;
        held.retain(|id| {
            inflight
                .get(id)
                .is_some_and(|e| e.state != OutboundState::AwaitingPubComp)
        });
        if inflight.len() - held.len() >= window {
            return None;
        }
        let id = held.pop_front()?;
        if held.is_empty() {
            // Its buffer is not kept for the life of the session.
            *held = VecDeque::new();
        }
        Some((id, self.inflight[&id].delivery.clone()))
    }

    /// Removes the messages that came through a shared subscription and that
    /// the client has not acknowledged at all (queued, or QoS 1 in flight before
    /// PUBACK), oldest first, for another member of the group to take over when
    /// this one leaves (MQTT 5.0 §4.8.2). A QoS 2 message in flight stays: its
    /// delivery is completed with this client or not at all [MQTT-4.8.2-4,
    /// MQTT-4.8.2-5].
    pub fn take_shared(&mut self) -> Vec<Delivery> {
        let mut taken: Vec<(u64, PacketId, Delivery)> = Vec::new();
        self.inflight.retain(|&id, e| {
            if e.delivery.qos == QoS::ExactlyOnce || e.delivery.shared.is_none() {
                return true;
            }
            taken.push((e.order, id, e.delivery.clone()));
            false
        });
        taken.sort_by_key(|(order, _, _)| *order);
        for &(_, id, _) in &taken {
            self.record_change(|| SessionChange::InflightEnded(id));
        }
        let mut out: Vec<Delivery> = taken.into_iter().map(|(_, _, d)| d).collect();
        let (shared, kept): (VecDeque<Delivery>, VecDeque<Delivery>) =
            std::mem::take(&mut self.queue)
                .into_iter()
                .partition(|d| d.shared.is_some());
        self.queue = kept;
        self.queued_bytes = self.queue.iter().map(|d| d.message.payload.len()).sum();
        for delivery in &shared {
            self.dequeued(delivery);
        }
        out.extend(shared.into_iter().map(|mut d| {
            d.stored = false;
            d
        }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;
    use starling_proto::TopicName;
    use std::sync::Arc;
    use std::time::Duration;

    const LIMITS: QueueLimits = QueueLimits {
        max_messages: Some(3),
        max_bytes: None,
        queue_qos0_offline: false,
    };

    fn delivery(qos: QoS, payload: &'static str) -> Delivery {
        Delivery {
            message: Arc::new(Message {
                topic: TopicName::from_static("t"),
                payload: Bytes::from_static(payload.as_bytes()),
                qos,
                retain: false,
                properties: Default::default(),
                expires_at: None,
                origin: None,
                publisher: None,
                stored_id: Default::default(),
            }),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
            stored: false,
        }
    }

    #[test]
    fn full_queue_drops_the_new_message_and_counts_it() {
        let mut s = SessionState::new(LIMITS);
        s.set_online(true);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce, "1")), Enqueued::First);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce, "2")), Enqueued::Behind);
        assert_eq!(s.enqueue(delivery(QoS::AtLeastOnce, "3")), Enqueued::Behind);
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce, "4")),
            Enqueued::Dropped { first: true }
        );
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce, "5")),
            Enqueued::Dropped { first: false }
        );
        assert_eq!(s.dropped, 2);
        assert_eq!(s.queued(), 3);
    }

    #[test]
    fn qos0_is_not_queued_offline_unless_asked() {
        let mut s = SessionState::new(LIMITS);
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce, "x")), Enqueued::Skipped);
        let mut s = SessionState::new(QueueLimits {
            queue_qos0_offline: true,
            ..LIMITS
        });
        assert_eq!(s.enqueue(delivery(QoS::AtMostOnce, "x")), Enqueued::First);
    }

    #[test]
    fn window_holds_back_qos1_and_everything_behind_it() {
        // [MQTT-4.6.0-6], [MQTT-4.9.0-2] (receive maximum)
        let mut s = SessionState::new(QueueLimits {
            max_messages: None,
            ..LIMITS
        });
        s.set_online(true);
        s.enqueue(delivery(QoS::AtLeastOnce, "a"));
        s.enqueue(delivery(QoS::AtMostOnce, "b"));
        let now = Instant::now();
        let first = s.next_ready(1, now).unwrap();
        let id = s.start_inflight(first);
        assert!(s.next_ready(1, now).is_some(), "QoS 0 may pass the window");
        s.enqueue(delivery(QoS::AtLeastOnce, "c"));
        s.enqueue(delivery(QoS::AtMostOnce, "d"));
        assert!(s.next_ready(1, now).is_none(), "window full");
        assert!(s.handle_puback(id));
        assert_eq!(&s.next_ready(1, now).unwrap().message.payload[..], b"c");
    }

    #[test]
    fn qos2_outbound_flow_and_resend_order() {
        // [MQTT-4.4.0-1]
        let mut s = SessionState::new(LIMITS);
        s.set_online(true);
        let a = s.start_inflight(delivery(QoS::ExactlyOnce, "a"));
        let b = s.start_inflight(delivery(QoS::AtLeastOnce, "b"));
        assert_ne!(a, b);
        assert!(s.handle_pubrec(a, false));
        let resend = s.resend(usize::MAX);
        assert!(matches!(resend[0], Resend::PubRel(id) if id == a));
        assert!(matches!(&resend[1], Resend::Publish(id, _) if *id == b));
        assert!(!s.handle_puback(a), "a PUBACK does not end a QoS 2 flow");
        assert!(s.handle_pubcomp(a));
        assert!(s.handle_puback(b));
        assert_eq!(s.inflight(), 0);
    }

    #[test]
    fn resend_holds_back_what_the_new_window_cannot_take() {
        // [MQTT-3.3.4-9] on resume: a QoS 2 flow awaiting PUBCOMP still takes a
        // place; held PUBLISHes go out, with their identifiers, as places free.
        let mut s = SessionState::new(LIMITS);
        s.set_online(true);
        let a = s.start_inflight(delivery(QoS::ExactlyOnce, "a"));
        let b = s.start_inflight(delivery(QoS::AtLeastOnce, "b"));
        let c = s.start_inflight(delivery(QoS::AtLeastOnce, "c"));
        assert!(s.handle_pubrec(a, false));
        let resend = s.resend(2);
        assert_eq!(resend.len(), 2);
        assert!(matches!(resend[0], Resend::PubRel(id) if id == a));
        assert!(matches!(&resend[1], Resend::Publish(id, _) if *id == b));
        assert!(s.next_held(2).is_none(), "window full");
        assert!(s.handle_puback(b));
        assert_eq!(s.next_held(2).map(|(id, _)| id), Some(c));
        assert!(s.next_held(2).is_none(), "nothing more held");
        assert!(s.next_ready(2, Instant::now()).is_none());
    }

    #[test]
    fn qos2_inbound_is_routed_once() {
        // [MQTT-4.3.3-10]: a resent PUBLISH before PUBREL is not a new message.
        let mut s = SessionState::new(LIMITS);
        let id = PacketId::new(7).unwrap();
        assert!(s.receive_qos2(id));
        assert!(!s.receive_qos2(id));
        assert!(s.release_qos2(id));
        assert!(!s.release_qos2(id));
        assert!(
            s.receive_qos2(id),
            "after PUBREL the identifier is free again"
        );
    }

    #[test]
    fn expired_messages_leave_the_queue() {
        // [MQTT-3.3.2-5]
        let mut s = SessionState::new(LIMITS);
        s.set_online(true);
        let now = Instant::now();
        let mut d = delivery(QoS::AtLeastOnce, "old");
        Arc::make_mut(&mut d.message).expires_at = Some(now + Duration::from_secs(1));
        s.enqueue(d);
        assert!(s.next_ready(10, now + Duration::from_secs(2)).is_none());
        assert_eq!(s.queued(), 0);
    }

    /// Issue 17: a client that drains slowly slows its publishers; one that
    /// takes nothing for a second (it does not read) no longer does.
    #[test]
    fn a_backed_up_client_slows_publishers_until_it_is_stuck() {
        let limits = Arc::new(QueueLimits {
            max_messages: Some(4),
            ..LIMITS
        });
        let mut state = SessionState::new(limits);
        state.set_online(true);
        let start = Instant::now();
        state.note_progress(start);
        assert!(!state.slows_publishers(), "nothing queued");
        for _ in 0..2 {
            state.enqueue(delivery(QoS::AtLeastOnce, "m"));
        }
        assert!(state.is_backed_up());
        assert!(state.slows_publishers_at(start), "backed up just now: slow");
        let later = start + STUCK / 2;
        assert!(state.slows_publishers_at(later));
        // It took something: still slow, counted from then.
        state.note_progress(later);
        assert!(state.slows_publishers_at(later + STUCK / 2));
        // Nothing taken for STUCK: stuck.
        assert!(!state.slows_publishers_at(later + STUCK * 2));
        // Offline, nobody is slowed whatever the queue.
        state.set_online(false);
        assert!(!state.slows_publishers());
    }
}
