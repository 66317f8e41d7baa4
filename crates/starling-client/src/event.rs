//! What the client hands the application: incoming messages and connection
//! events ([`Event`]), the outcome of a publish ([`Published`]), and the packet
//! trace for debug output ([`PacketTrace`]).

use std::sync::Arc;

use bytes::Bytes;
use starling_proto::property::{AckProperties, PublishProperties};
use starling_proto::{ConnAck, Packet, PacketId, Publish, QoS, ReasonCode, TopicName};

use crate::error::Error;

/// An application message: what [`Client::publish_with`](crate::Client::publish_with)
/// sends and what [`Event::Message`] delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic. For an incoming message a Topic Alias has already been
    /// resolved to the name it stands for.
    pub topic: TopicName,
    /// The payload, shared with the buffer it arrived in.
    pub payload: Bytes,
    /// The QoS it was delivered (or is to be published) with.
    pub qos: QoS,
    /// The RETAIN flag.
    pub retain: bool,
    /// The DUP flag of an incoming message; ignored when publishing.
    pub dup: bool,
    /// MQTT 5.0 properties. When publishing, a Topic Alias or Subscription
    /// Identifiers set here are left out (the client does not use aliases, and
    /// only brokers send subscription identifiers).
    pub properties: PublishProperties,
}

impl Message {
    /// A message of `payload` on `topic` at `qos`, not retained, without properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>, qos: QoS) -> Self {
        Message {
            topic,
            payload: payload.into(),
            qos,
            retain: false,
            dup: false,
            properties: PublishProperties::default(),
        }
    }

    /// Sets the RETAIN flag.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }

    /// Sets the MQTT 5.0 properties.
    pub fn properties(mut self, properties: PublishProperties) -> Self {
        self.properties = properties;
        self
    }

    pub(crate) fn from_publish(publish: Publish) -> Self {
        Message {
            qos: publish.qos(),
            topic: publish.topic,
            payload: publish.payload,
            retain: publish.retain,
            dup: publish.dup,
            properties: publish.properties.into_inner(),
        }
    }
}

/// A publish whose QoS flow completed: written (QoS 0), acknowledged by PUBACK
/// (QoS 1) or by PUBCOMP (QoS 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// For QoS 1 and 2, the Packet Identifier of the PUBLISH that completed. For
    /// QoS 0, a local message identifier from the same counter that is never sent
    /// (as Paho's and libmosquitto's "mid"), so consecutive publishes number 1,
    /// 2, 3 whatever their QoS.
    pub message_id: PacketId,
    /// The QoS it was published with.
    pub qos: QoS,
    /// The PUBACK's or PUBREC's reason code (MQTT 5.0): Success or No matching
    /// subscribers (0x10). Always Success for QoS 0 and for 3.x. A failure code
    /// is an [`Error::Rejected`], not a `Published`.
    pub reason_code: ReasonCode,
    /// The PUBACK's or PUBREC's properties (MQTT 5.0).
    pub properties: AckProperties,
}

/// Something that happened on the connection, in order.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A message from the broker. QoS 1 and 2 messages are acknowledged when they
    /// arrive; a QoS 2 message is delivered once even if the broker sends it
    /// again before releasing it.
    Message(Message),
    /// A connection was established: the first one (the first event of every
    /// client) and each reconnection.
    Connected {
        /// Whether the broker resumed the session (3.1: whether Clean Session
        /// was 0, as 3.1 brokers do not say).
        session_present: bool,
        /// The whole CONNACK, with the broker's MQTT 5.0 properties.
        connack: ConnAck,
    },
    /// The connection ended. If the client reconnects, `Connected` follows;
    /// after the last `Disconnected` the stream ends.
    Disconnected {
        /// Why: [`Error::Closed`] after [`Client::disconnect`](crate::Client::disconnect),
        /// otherwise what broke the connection.
        reason: Error,
    },
}

/// Which way a traced packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From this client to the broker.
    Sent,
    /// From the broker to this client.
    Received,
}

/// One packet sent or received, as the [packet observer](crate::ClientOptions::packet_observer)
/// sees it.
#[derive(Debug, Clone, Copy)]
pub struct PacketTrace<'a> {
    /// Sent or received.
    pub direction: Direction,
    /// The packet.
    pub packet: &'a Packet,
    /// The client identifier in use: empty until a broker-assigned one is known.
    pub client_id: &'a str,
    /// The message identifier for Mosquitto-style "m" fields: the Packet
    /// Identifier if the packet has one, the local identifier of an outgoing QoS
    /// 0 PUBLISH (see [`Published::message_id`]), otherwise 0.
    pub message_id: u16,
}

/// The Packet Identifier `packet` carries, or 0.
pub(crate) fn packet_message_id(packet: &Packet) -> u16 {
    match packet {
        Packet::Publish(p) => p.packet_id().map_or(0, PacketId::get),
        Packet::PubAck(p) => p.packet_id.get(),
        Packet::PubRec(p) => p.packet_id.get(),
        Packet::PubRel(p) => p.packet_id.get(),
        Packet::PubComp(p) => p.packet_id.get(),
        Packet::Subscribe(p) => p.packet_id.get(),
        Packet::SubAck(p) => p.packet_id.get(),
        Packet::Unsubscribe(p) => p.packet_id.get(),
        Packet::UnsubAck(p) => p.packet_id.get(),
        _ => 0,
    }
}

/// A callback that sees every packet; see [`ClientOptions::packet_observer`](crate::ClientOptions::packet_observer).
/// It runs on the connection task: keep it quick.
pub type PacketObserver = Arc<dyn Fn(&PacketTrace<'_>) + Send + Sync>;
