//! Storage: what must survive a crash of the broker (issue 6), behind one narrow
//! trait, [`Store`], so the broker core never sees SQL.
//!
//! Layout:
//! - this file: the trait, the domain records it stores, [`Change`],
//!   [`Snapshot`], [`Durability`] and [`StoreError`];
//! - [`sqlite`]: the on-disk engine (SQLite in WAL mode, one transaction per
//!   batch);
//! - [`memory`]: the same contract in memory, for tests and `persistence false`;
//! - `blob.rs`: the byte layout of the v5 properties a stored message keeps.
//!
//! The broker writes by *changes* in batches: [`Store::apply`] takes every
//! change of one batch and makes them one transaction, so with
//! [`Durability::Sync`] many PUBLISHes share one fsync (group commit). Reads
//! happen once, at start-up: [`Store::load`] returns everything as a
//! [`Snapshot`], with sessions and messages that expired while the broker was
//! down already left out.
//!
//! A message is stored once, under a [`MessageId`] the broker assigns (from
//! [`Snapshot::next_message_id`] on), and queue, in-flight and retained rows
//! refer to it: fan-out to a thousand offline sessions writes one payload. A
//! message no row refers to any more is deleted by the store in the batch that
//! dropped its last reference.
//!
//! Times are wall-clock ([`SystemTime`]): an `Instant` means nothing after a
//! restart. The caller passes "now" to [`Store::load`]; the store reads no clock.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use starling_proto::property::PublishProperties;
use starling_proto::{MqttString, PacketId, QoS, SubscriptionId, TopicFilter, TopicName};

use crate::router::Subscription;
use crate::session::OutboundState;

mod blob;
pub mod memory;
pub mod sqlite;
pub mod writer;

pub use memory::MemoryStore;
pub use sqlite::SqliteStore;
pub use writer::{Clock, Op, Persistence, StoreStats};

/// When a write reaches the disk, as `persistence_sync` / `[storage] sync` says.
///
/// - `Sync` (the default): every [`Store::apply`] returns only once its batch is
///   durable (fsync). The broker acknowledges a PUBLISH (PUBACK, PUBREC) that a
///   persistent session or the retained store must keep only after the batch
///   holding it was applied, so an acknowledged message survives a crash of the
///   broker or of the machine. Group commit (one batch per round of reads)
///   spreads one fsync over many messages.
/// - `Periodic(every)`: batches are written at once but made durable only by
///   [`Store::sync`], which the broker calls every `every`. A crash of the broker
///   process loses nothing (the operating system has the writes); a crash of the
///   machine or a power cut loses up to `every` of acknowledged work.
/// - `Off`: no fsync at all. A crash of the broker process still loses nothing
///   written; a power cut may lose anything since the operating system last
///   flushed on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync before `apply` returns (group commit).
    #[default]
    Sync,
    /// fsync when [`Store::sync`] is called, every so often.
    Periodic(Duration),
    /// Never fsync.
    Off,
}

/// Names a stored message. Assigned by the broker, increasing, unique for the
/// life of a store (start from [`Snapshot::next_message_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// An application message as stored: what [`crate::message::Message`] holds,
/// with its expiry on the wall clock. `properties` never carries a Topic Alias
/// or Subscription Identifiers (they are per connection and not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// The topic it was published to.
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The publisher's RETAIN flag.
    pub retain: bool,
    /// The v5 properties forwarded to subscribers.
    pub properties: PublishProperties,
    /// When its Message Expiry Interval runs out; `None` never.
    pub expires_at: Option<SystemTime>,
    /// Who published it, for a retained message kept for
    /// `check_retain_source`.
    pub publisher: Option<crate::message::Publisher>,
}

impl StoredMessage {
    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// One subscriber's view of a stored message: what [`crate::message::Delivery`]
/// holds, with the message by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDelivery {
    /// The message.
    pub message: MessageId,
    /// The QoS it is delivered with.
    pub qos: QoS,
    /// The RETAIN flag it is delivered with.
    pub retain: bool,
    /// Identifiers of the matching subscriptions.
    pub subscription_ids: Vec<SubscriptionId>,
    /// The shared subscription it came through, if any.
    pub shared: Option<TopicFilter>,
}

/// A session's will, waiting for the session's connection to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWill {
    /// Where it is published.
    pub topic: TopicName,
    /// What is published.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
    /// The properties it is published with (its Message Expiry Interval starts
    /// when it is published).
    pub properties: PublishProperties,
    /// The Will Delay Interval.
    pub delay: Duration,
}

/// When a session ends once its client is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionExpiry {
    /// Session Expiry Interval 0xFFFFFFFF: the session never expires.
    Never,
    /// The session ends this long after its connection does.
    After(Duration),
}

/// A persistent session: everything but its queue and in-flight messages,
/// which are stored as separate changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The client identifier.
    pub client_id: MqttString,
    /// Its Session Expiry Interval.
    pub expiry: SessionExpiry,
    /// When its connection ended; `None` while a connection is attached. A
    /// session that was online when the broker stopped counts its expiry from
    /// the [`Store::load`] time.
    pub disconnected_at: Option<SystemTime>,
    /// The will of its connection.
    pub will: Option<StoredWill>,
    /// Its subscriptions, with options and identifiers.
    pub subscriptions: Vec<(TopicFilter, Subscription)>,
}

impl StoredSession {
    /// Whether the session has expired at `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        match (self.expiry, self.disconnected_at) {
            (SessionExpiry::After(after), Some(at)) => at + after <= now,
            _ => false,
        }
    }
}

/// An outbound QoS 1 or 2 message in flight to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInflight {
    /// Its packet identifier.
    pub packet_id: PacketId,
    /// Where its flow stands.
    pub state: OutboundState,
    /// The message as delivered.
    pub delivery: StoredDelivery,
}

/// One change to the stored state. A batch of them is one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Stores a message under its id; rows below refer to it. A message is
    /// never changed: putting an id that is stored changes nothing. A change
    /// that refers to it must follow in the same batch (a message put and never
    /// referred to is not collected).
    PutMessage(MessageId, StoredMessage),
    /// Makes a message the retained message of its topic (replacing any).
    PutRetained(TopicName, MessageId),
    /// Clears a topic's retained message.
    RemoveRetained(TopicName),
    /// Stores or replaces a session (not its queue or in-flight messages).
    PutSession(StoredSession),
    /// Deletes a session with its queue, in-flight messages and QoS 2 ids.
    RemoveSession(MqttString),
    /// Appends a delivery to a session's queue. A message sits at most once in
    /// one queue: enqueuing it again changes nothing.
    Enqueue(MqttString, StoredDelivery),
    /// Takes a message out of a session's queue.
    Dequeue(MqttString, MessageId),
    /// Stores an outbound in-flight entry, or moves it to a new state.
    PutInflight(MqttString, StoredInflight),
    /// Ends an outbound flow.
    RemoveInflight(MqttString, PacketId),
    /// Records an inbound QoS 2 packet id awaiting PUBREL.
    PutIncomingQos2(MqttString, PacketId),
    /// PUBREL received: forgets the id.
    RemoveIncomingQos2(MqttString, PacketId),
}

/// A session's state as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSession {
    /// The session.
    pub session: StoredSession,
    /// Its queue, oldest first.
    pub queue: Vec<StoredDelivery>,
    /// Its in-flight messages, in the order they were first sent.
    pub inflight: Vec<StoredInflight>,
    /// Inbound QoS 2 ids awaiting PUBREL, ascending.
    pub incoming_qos2: Vec<PacketId>,
}

/// Everything stored, as [`Store::load`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every message some row below refers to, by id, ascending.
    pub messages: Vec<(MessageId, StoredMessage)>,
    /// Retained messages by topic, ascending.
    pub retained: Vec<(TopicName, MessageId)>,
    /// Unexpired sessions, by client id ascending.
    pub sessions: Vec<LoadedSession>,
    /// The first message id the broker may assign.
    pub next_message_id: MessageId,
    /// The wills of sessions that expired while the broker was down: they
    /// were due by then, and are published at start-up.
    pub expired_wills: Vec<StoredWill>,
}

impl Default for MessageId {
    fn default() -> Self {
        MessageId(1)
    }
}

/// Why the store failed. Every variant names the store's path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened or created.
    #[error("cannot open the store {path}: {reason}")]
    Open {
        /// The store's file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file is not a store, or is damaged.
    #[error("the store {path} is damaged: {reason}")]
    Corrupt {
        /// The store's file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The file was written by a Starling with another schema.
    #[error("the store {path} has schema version {found}; this Starling reads version {expected}")]
    Version {
        /// The store's file.
        path: PathBuf,
        /// The version in the file.
        found: i64,
        /// The version this build reads.
        expected: i64,
    },
    /// The disk is full: nothing of the batch was stored.
    #[error("the store {path} cannot grow: the disk is full")]
    Full {
        /// The store's file.
        path: PathBuf,
    },
    /// A read or write failed: nothing of the batch was stored.
    #[error("the store {path} failed: {reason}")]
    Io {
        /// The store's file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The broker's persistent state. One writer at a time (the methods take
/// `&self` and serialise inside), any thread.
pub trait Store: Send + Sync + fmt::Debug {
    /// Applies a batch of changes as one transaction: all of them or, on error,
    /// none. With [`Durability::Sync`] the batch is durable when this returns.
    fn apply(&self, batch: &[Change]) -> Result<(), StoreError>;

    /// Makes every applied batch durable (the timer of
    /// [`Durability::Periodic`]); a no-op with `Sync` and `Off`.
    fn sync(&self) -> Result<(), StoreError>;

    /// Everything stored, leaving out sessions expired at `now` and queued
    /// messages expired at `now` (and deleting both from the store).
    fn load(&self, now: SystemTime) -> Result<Snapshot, StoreError>;

    /// Gives the space of deleted rows back, so the store's size follows what
    /// it holds. The writer calls it now and then.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Bytes the store takes on disk, if it is on disk.
    fn size(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use starling_proto::SubscriptionOptions;

    pub(crate) fn message(topic: &'static str, expires_at: Option<SystemTime>) -> StoredMessage {
        StoredMessage {
            topic: TopicName::from_static(topic),
            payload: Bytes::from_static(b"payload"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: PublishProperties::default(),
            expires_at,
            publisher: None,
        }
    }

    pub(crate) fn session(client_id: &'static str) -> StoredSession {
        StoredSession {
            client_id: MqttString::from_static(client_id),
            expiry: SessionExpiry::Never,
            disconnected_at: None,
            will: None,
            subscriptions: vec![(
                TopicFilter::from_static("t/#"),
                Subscription {
                    options: SubscriptionOptions::new(QoS::AtLeastOnce),
                    id: None,
                },
            )],
        }
    }

    pub(crate) fn delivery(message: MessageId) -> StoredDelivery {
        StoredDelivery {
            message,
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: Vec::new(),
            shared: None,
        }
    }

    #[test]
    fn durability_defaults_to_sync() {
        assert_eq!(Durability::default(), Durability::Sync);
    }

    #[test]
    fn a_session_expires_only_once_disconnected() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let mut session = StoredSession {
            client_id: MqttString::from_static("c"),
            expiry: SessionExpiry::After(Duration::from_secs(10)),
            disconnected_at: None,
            will: None,
            subscriptions: Vec::new(),
        };
        assert!(!session.is_expired(t0 + Duration::from_secs(100)));
        session.disconnected_at = Some(t0);
        assert!(!session.is_expired(t0 + Duration::from_secs(9)));
        assert!(session.is_expired(t0 + Duration::from_secs(10)));
        session.expiry = SessionExpiry::Never;
        assert!(!session.is_expired(t0 + Duration::from_secs(1 << 30)));
    }
}
