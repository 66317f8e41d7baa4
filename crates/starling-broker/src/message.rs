//! `Message`: one application message inside the broker, shared by every queue
//! it sits in. Its payload is a `Bytes` slice of the publisher's read buffer, so
//! fan-out to any number of subscribers copies no payload.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_proto::property::{Props, PublishProperties};
use starling_proto::{Publish, QoS, SubscriptionId, TopicFilter, TopicName};

use crate::storage::MessageId;

/// Identifies the session a message came from, so No Local can skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Who published a retained message, kept with it for `check_retain_source`
/// (whose ACL check needs the publisher's client id, user name and listener).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// The client identifier.
    pub client_id: String,
    /// The user name, `None` for an anonymous client.
    pub username: Option<String>,
    /// The bound address of the listener it came in on (its security scope).
    pub listener: std::net::SocketAddr,
}

/// An application message as the broker keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published to (aliases already resolved).
    pub topic: TopicName,
    /// The payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The publisher's RETAIN flag.
    pub retain: bool,
    /// The v5 properties forwarded to subscribers: payload format, content type,
    /// response topic, correlation data, user properties. Never a topic alias or
    /// subscription identifiers: those are per connection. Out of line, as in
    /// the PUBLISH it came from: most messages have none.
    pub properties: Props<PublishProperties>,
    /// When the Message Expiry Interval runs out.
    pub expires_at: Option<Instant>,
    /// The session that published it; `None` for wills and `$SYS`.
    pub origin: Option<SessionId>,
    /// Its publisher, for a retained message when `check_retain_source` is
    /// on; `None` otherwise (and for wills and `$SYS`).
    pub publisher: Option<Arc<Publisher>>,
    /// Its id in the store, given by the store's writer the first time a
    /// persistent session or the retained store keeps it.
    pub stored_id: OnceLock<MessageId>,
}

impl Message {
    /// The message a client's PUBLISH carries, received at `now`.
    pub fn from_publish(publish: Publish, origin: Option<SessionId>, now: Instant) -> Message {
        let mut properties = publish.properties;
        // Checked first: a write through `Props` allocates.
        if properties.topic_alias.is_some() || !properties.subscription_identifiers.is_empty() {
            properties.topic_alias = None;
            properties.subscription_identifiers.clear();
        }
        let expires_at = properties
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        Message {
            qos: publish.delivery.qos(),
            topic: publish.topic,
            payload: publish.payload,
            retain: publish.retain,
            properties,
            expires_at,
            origin,
            publisher: None,
            stored_id: OnceLock::new(),
        }
    }

    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Seconds left before expiry, rounded up, for the forwarded Message Expiry
    /// Interval [MQTT-3.3.2-6].
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// A message on its way to one subscriber: the shared message plus what this
/// subscriber's subscriptions decided about it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The shared message.
    pub message: Arc<Message>,
    /// The QoS it is delivered with.
    pub qos: QoS,
    /// The RETAIN flag it is delivered with.
    pub retain: bool,
    /// Identifiers of every matching subscription that had one [MQTT-3.3.4-3].
    pub subscription_ids: Vec<SubscriptionId>,
    /// The shared subscription it came through, if any: another member may
    /// take it over if this subscriber leaves before acknowledging it.
    pub shared: Option<TopicFilter>,
    /// Whether the store holds this delivery in its session's queue.
    pub stored: bool,
}
