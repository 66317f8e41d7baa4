//! The MQTT wire format for Starling: MQTT 3.1, 3.1.1 and 5.0 in one packet model.
//!
//! This crate does no I/O and reads no clock. Its layers, bottom up:
//! - [`string`]: validated UTF-8 strings that share the received buffer;
//! - [`topic`]: topic names and filters as validated types, matching and `$share`;
//! - [`qos`], [`reason`], [`version`]: the small vocabulary types;
//! - [`property`]: v5 properties, one typed struct per packet;
//! - [`packet`]: the 15 control packets, version-aware decode and encode;
//! - [`codec`]: the streaming [`Decoder`] that frames packets out of a byte buffer
//!   and enforces the maximum packet size before buffering;
//! - [`error`]: every malformed or protocol-violating input as a typed error naming
//!   the normative statement it breaks and the v5 reason code to answer with.
//!
//! Decoding never copies a payload or a topic: both are `Bytes` slices of the
//! buffer the packet arrived in.

pub mod codec;
pub mod error;
pub mod packet;
pub mod property;
pub mod qos;
pub mod reason;
pub mod string;
pub mod topic;
pub mod version;
mod wire;

pub use codec::{Decoder, Role};
pub use error::{DecodeError, EncodeError};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, PubAck, PubComp, PubRec, PubRel,
    Publish, PublishRef, RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck,
    Unsubscribe, Will,
};
pub use property::{SubscriptionId, TopicAlias, UserProperty};
pub use qos::{Delivery, PacketId, QoS};
pub use reason::ReasonCode;
pub use string::MqttString;
pub use topic::{Levels, TopicFilter, TopicName};
pub use version::ProtocolVersion;
pub use wire::VARINT_MAX;
