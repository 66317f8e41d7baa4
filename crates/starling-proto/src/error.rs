//! `DecodeError` and `EncodeError`: everything that can be wrong with bytes on the
//! wire or with a packet we are asked to send.
//!
//! Each decode error names the normative statement it breaks (MQTT 5.0 numbering
//! where the rule exists in 5.0, 3.1.1 numbering for 3.1.1-only rules, a section
//! number where the specification states the rule without an identifier), and
//! [`DecodeError::reason_code`] is the one place that decides which v5 reason code
//! the receiver answers with.

use std::fmt;

use crate::packet::PacketType;
use crate::property::PropertyId;
use crate::reason::ReasonCode;
use crate::string::Utf8Error;
use crate::topic::TopicError;

/// Why a byte stream is not a valid MQTT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet is larger than the receiver's Maximum Packet Size. Detected from
    /// the fixed header, before the body is buffered.
    PacketTooLarge {
        /// The size the fixed header claims, header included.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// The Remaining Length (or another Variable Byte Integer) runs past 4 bytes.
    VarintTooLong,
    /// A Variable Byte Integer not in its shortest form.
    VarintNotMinimal,
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0.
    ReservedPacketType(u8),
    /// The fixed header's low four bits are not those the packet type requires.
    InvalidHeaderFlags {
        /// The packet.
        packet: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// The packet ended before a field it must contain.
    Truncated {
        /// The packet.
        packet: PacketType,
    },
    /// Bytes remain after the last field of a packet.
    TrailingBytes {
        /// The packet.
        packet: PacketType,
    },
    /// A PINGREQ, PINGRESP or MQTT 3.x DISCONNECT with a non-zero Remaining Length.
    UnexpectedBody {
        /// The packet.
        packet: PacketType,
    },
    /// A UTF-8 Encoded String that breaks the string rules.
    InvalidUtf8 {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        error: Utf8Error,
    },
    /// A topic name that breaks the topic rules.
    InvalidTopicName(TopicError),
    /// A topic filter that breaks the filter or shared-subscription rules.
    InvalidTopicFilter(TopicError),
    /// A PUBLISH with a zero-length topic name and no Topic Alias.
    EmptyTopicWithoutAlias,
    /// Packet Identifier 0 where one is required.
    PacketIdZero {
        /// The packet.
        packet: PacketType,
    },
    /// A PUBLISH with both QoS bits set.
    InvalidQoS,
    /// A QoS 0 PUBLISH with the DUP flag set.
    DupOnQoS0,
    /// CONNECT's protocol name is neither `MQTT` nor `MQIsdp`. (A known name with
    /// a level it does not go with is an `UnsupportedProtocolLevel`, as Mosquitto
    /// answers it.)
    InvalidProtocolName,
    /// CONNECT's protocol level is not 3, 4 or 5.
    UnsupportedProtocolLevel(u8),
    /// CONNECT's reserved flag bit 0 is set.
    ConnectReservedFlag,
    /// Will QoS set while the Will Flag is 0.
    WillQoSWithoutWill,
    /// Will Retain set while the Will Flag is 0.
    WillRetainWithoutWill,
    /// Will QoS 3.
    InvalidWillQoS,
    /// MQTT 3.1.1: the Password Flag without the User Name Flag.
    PasswordWithoutUsername,
    /// CONNACK's reserved acknowledge flag bits are set.
    ConnAckReservedFlags,
    /// CONNACK with Session Present set and a failure reason code.
    SessionPresentOnFailure,
    /// A property identifier the specification does not define.
    UnknownProperty(u32),
    /// A property not allowed in this packet.
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// The packet.
        packet: PacketType,
    },
    /// A property that may appear once appears twice.
    DuplicateProperty(PropertyId),
    /// A property value outside its range (Receive Maximum 0, a flag other than 0 or 1, ...).
    InvalidPropertyValue(PropertyId),
    /// A Subscription Identifier in a PUBLISH sent by a client.
    SubscriptionIdFromClient,
    /// A Subscription Identifier of 0.
    SubscriptionIdZero,
    /// A Topic Alias of 0.
    TopicAliasZero,
    /// A SUBSCRIBE without any topic filter.
    EmptySubscribe,
    /// An UNSUBSCRIBE without any topic filter.
    EmptyUnsubscribe,
    /// Reserved bits of a SUBSCRIBE's subscription options are set.
    SubscriptionOptionsReserved,
    /// Subscription options with a QoS of 3.
    InvalidSubscriptionQoS,
    /// Retain Handling 3.
    InvalidRetainHandling,
    /// No Local on a shared subscription.
    NoLocalOnSharedSubscription,
    /// A reason code this packet may not carry.
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The code received.
        code: u8,
    },
    /// A packet the peer in this role must never send (a client's CONNACK, ...).
    UnexpectedPacket(PacketType),
}

impl DecodeError {
    /// The normative statement (or section) the input breaks.
    pub fn rule(&self) -> &'static str {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => "MQTT-3.2.2-15",
            VarintTooLong => "MQTT-5.0 §1.5.5",
            VarintNotMinimal => "MQTT-1.5.5-1",
            ReservedPacketType(_) => "MQTT-5.0 §2.1.2",
            InvalidHeaderFlags { .. } => match self {
                InvalidHeaderFlags {
                    packet: PacketType::PubRel,
                    ..
                } => "MQTT-3.6.1-1",
                InvalidHeaderFlags {
                    packet: PacketType::Subscribe,
                    ..
                } => "MQTT-3.8.1-1",
                InvalidHeaderFlags {
                    packet: PacketType::Unsubscribe,
                    ..
                } => "MQTT-3.10.1-1",
                _ => "MQTT-2.1.3-1",
            },
            Truncated { .. } | TrailingBytes { .. } => "MQTT-5.0 §2.1.4",
            UnexpectedBody {
                packet: PacketType::Disconnect,
            } => "MQTT-3.1.1 §3.14.1",
            UnexpectedBody {
                packet: PacketType::PingResp,
            } => "MQTT-5.0 §3.13.1",
            UnexpectedBody { .. } => "MQTT-5.0 §3.12.1",
            InvalidUtf8 {
                error: Utf8Error::NullCharacter,
                ..
            } => "MQTT-1.5.4-2",
            InvalidUtf8 { .. } => "MQTT-1.5.4-1",
            InvalidTopicName(e) | InvalidTopicFilter(e) => e.rule(),
            EmptyTopicWithoutAlias => "MQTT-5.0 §3.3.2.1",
            PacketIdZero { .. } => "MQTT-2.2.1-3",
            InvalidQoS => "MQTT-3.3.1-4",
            DupOnQoS0 => "MQTT-3.3.1-2",
            InvalidProtocolName => "MQTT-3.1.2-1",
            UnsupportedProtocolLevel(_) => "MQTT-3.1.2-2",
            ConnectReservedFlag => "MQTT-3.1.2-3",
            WillQoSWithoutWill => "MQTT-3.1.2-11",
            WillRetainWithoutWill => "MQTT-3.1.2-13",
            InvalidWillQoS => "MQTT-3.1.2-12",
            PasswordWithoutUsername => "MQTT-3.1.2-22 of 3.1.1",
            ConnAckReservedFlags => "MQTT-3.2.2-1",
            SessionPresentOnFailure => "MQTT-3.2.2-6",
            UnknownProperty(_) | PropertyNotAllowed { .. } => "MQTT-5.0 §2.2.2.2",
            DuplicateProperty(_) | InvalidPropertyValue(_) => {
                "MQTT-5.0 §2.2.2.2 and the property's definition in §3"
            }
            SubscriptionIdFromClient => "MQTT-3.3.4-6",
            SubscriptionIdZero => "MQTT-5.0 §3.8.2.1.2",
            TopicAliasZero => "MQTT-3.3.2-8",
            EmptySubscribe => "MQTT-3.8.3-2",
            EmptyUnsubscribe => "MQTT-3.10.3-2",
            SubscriptionOptionsReserved => "MQTT-3.8.3-5",
            InvalidSubscriptionQoS => "MQTT-5.0 §3.8.3.1",
            InvalidRetainHandling => "MQTT-5.0 §3.8.3.1",
            NoLocalOnSharedSubscription => "MQTT-3.8.3-4",
            InvalidReasonCode { .. } => "MQTT-5.0 §2.4",
            UnexpectedPacket(_) => "MQTT-5.0 §2.1.2",
        }
    }

    /// The MQTT 5.0 reason code a server (or client) sends in the DISCONNECT (or
    /// CONNACK, before a session exists) that closes a connection over this error.
    ///
    /// This is the only mapping from decode errors to reason codes: 0x81 where the
    /// bytes cannot be read as the packet, 0x82 where they can but a rule forbids
    /// what they say, and the specific codes the specification names.
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            InvalidTopicName(_) => ReasonCode::TOPIC_NAME_INVALID,
            InvalidTopicFilter(_) => ReasonCode::TOPIC_FILTER_INVALID,
            TopicAliasZero => ReasonCode::TOPIC_ALIAS_INVALID,
            InvalidProtocolName | UnsupportedProtocolLevel(_) => {
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
            }
            EmptyTopicWithoutAlias
            | PacketIdZero { .. }
            | DupOnQoS0
            | DuplicateProperty(_)
            | InvalidPropertyValue(_)
            | SubscriptionIdFromClient
            | SubscriptionIdZero
            | EmptySubscribe
            | EmptyUnsubscribe
            | InvalidSubscriptionQoS
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | SessionPresentOnFailure
            | UnexpectedPacket(_) => ReasonCode::PROTOCOL_ERROR,
            VarintTooLong
            | VarintNotMinimal
            | ReservedPacketType(_)
            | InvalidHeaderFlags { .. }
            | Truncated { .. }
            | TrailingBytes { .. }
            | UnexpectedBody { .. }
            | InvalidUtf8 { .. }
            | InvalidQoS
            | ConnectReservedFlag
            | WillQoSWithoutWill
            | WillRetainWithoutWill
            | InvalidWillQoS
            | PasswordWithoutUsername
            | ConnAckReservedFlags
            | UnknownProperty(_)
            | PropertyNotAllowed { .. }
            | SubscriptionOptionsReserved
            | InvalidReasonCode { .. } => ReasonCode::MALFORMED_PACKET,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError::*;
        write!(f, "[{}] ", self.rule())?;
        match self {
            PacketTooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the maximum packet size of {max}"
                )
            }
            VarintTooLong => f.write_str("variable byte integer longer than 4 bytes"),
            VarintNotMinimal => f.write_str("variable byte integer not in its shortest form"),
            ReservedPacketType(t) => write!(f, "reserved packet type {t}"),
            InvalidHeaderFlags { packet, flags } => {
                write!(f, "invalid fixed header flags {flags:#06b} for {packet}")
            }
            Truncated { packet } => write!(f, "{packet} ends before its last field"),
            TrailingBytes { packet } => write!(f, "{packet} has bytes after its last field"),
            UnexpectedBody { packet } => write!(f, "{packet} must have a remaining length of 0"),
            InvalidUtf8 { field, error } => {
                let what = match error {
                    Utf8Error::Malformed => "is not well-formed UTF-8",
                    Utf8Error::NullCharacter => "contains U+0000",
                    Utf8Error::TooLong => "is longer than 65535 bytes",
                };
                write!(f, "{field} {what}")
            }
            InvalidTopicName(e) | InvalidTopicFilter(e) => {
                // TopicError's own text starts with its rule; drop the repeat.
                let text = e.to_string();
                let text = text
                    .strip_prefix(&format!("[{}] ", e.rule()))
                    .unwrap_or(&text);
                f.write_str(text)
            }
            EmptyTopicWithoutAlias => f.write_str("empty topic name without a topic alias"),
            PacketIdZero { packet } => write!(f, "{packet} with packet identifier 0"),
            InvalidQoS => f.write_str("PUBLISH with QoS 3"),
            DupOnQoS0 => f.write_str("QoS 0 PUBLISH with the DUP flag set"),
            InvalidProtocolName => f.write_str("unknown protocol name in CONNECT"),
            UnsupportedProtocolLevel(level) => write!(f, "unsupported protocol level {level}"),
            ConnectReservedFlag => f.write_str("CONNECT reserved flag is set"),
            WillQoSWithoutWill => f.write_str("will QoS set without the will flag"),
            WillRetainWithoutWill => f.write_str("will retain set without the will flag"),
            InvalidWillQoS => f.write_str("will QoS 3"),
            PasswordWithoutUsername => f.write_str("password flag set without the user name flag"),
            ConnAckReservedFlags => f.write_str("CONNACK reserved flags are set"),
            SessionPresentOnFailure => f.write_str("session present set on a refused CONNACK"),
            UnknownProperty(id) => write!(f, "unknown property identifier {id:#04x}"),
            PropertyNotAllowed { property, packet } => {
                write!(f, "property {property} is not allowed in {packet}")
            }
            DuplicateProperty(property) => write!(f, "property {property} appears twice"),
            InvalidPropertyValue(property) => write!(f, "property {property} has an invalid value"),
            SubscriptionIdFromClient => {
                f.write_str("client PUBLISH carries a subscription identifier")
            }
            SubscriptionIdZero => f.write_str("subscription identifier 0"),
            TopicAliasZero => f.write_str("topic alias 0"),
            EmptySubscribe => f.write_str("SUBSCRIBE without a topic filter"),
            EmptyUnsubscribe => f.write_str("UNSUBSCRIBE without a topic filter"),
            SubscriptionOptionsReserved => {
                f.write_str("subscription options reserved bits are set")
            }
            InvalidSubscriptionQoS => f.write_str("subscription with QoS 3"),
            InvalidRetainHandling => f.write_str("retain handling 3"),
            NoLocalOnSharedSubscription => f.write_str("no local set on a shared subscription"),
            InvalidReasonCode { packet, code } => {
                write!(f, "reason code {code:#04x} is not allowed in {packet}")
            }
            UnexpectedPacket(packet) => write!(f, "{packet} must not be sent by this peer"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Why a packet cannot be encoded for a protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The packet does not exist before MQTT 5.0 (AUTH).
    #[error("{packet} does not exist in MQTT {version}")]
    NotInVersion {
        /// The packet.
        packet: PacketType,
        /// The version asked for.
        version: crate::ProtocolVersion,
    },
    /// The encoded packet would exceed the 268,435,455-byte Remaining Length limit.
    #[error("packet too large to encode: remaining length {0}")]
    TooLarge(usize),
    /// A reason code the version cannot express in this packet.
    #[error("reason code {code} cannot be sent in {packet} of MQTT {version}")]
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The code.
        code: ReasonCode,
        /// The version asked for.
        version: crate::ProtocolVersion,
    },
    /// A SUBSCRIBE or UNSUBSCRIBE without filters, or a SUBACK/UNSUBACK without codes.
    #[error("{0} must carry at least one entry")]
    Empty(PacketType),
    /// A binary field or property longer than 65,535 bytes.
    #[error("{0} is longer than 65535 bytes")]
    FieldTooLong(&'static str),
    /// The receiver would refuse the packet for this reason.
    #[error("the receiver would refuse it: {0}")]
    Refused(DecodeError),
}
