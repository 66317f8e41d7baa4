//! `ReasonCode`: the one-byte result of an operation, as MQTT 5.0 §2.4 lists them,
//! with the sets each packet may carry and the mapping to MQTT 3.x return codes.
//!
//! A newtype over `u8` rather than an enum because the specification gives one
//! value several names (0x00 is Success, Normal disconnection and Granted QoS 0).

use std::fmt;

use crate::packet::PacketType;
use crate::version::ProtocolVersion;

/// An MQTT 5.0 reason code. Values of 0x80 and above are failures.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReasonCode(pub u8);

macro_rules! reason_codes {
    ($($name:ident = $value:literal, $text:literal;)*) => {
        impl ReasonCode {
            $(#[doc = $text] pub const $name: ReasonCode = ReasonCode($value);)*
        }

        /// The specification's name of a reason code value (the first name where
        /// a value has several).
        fn text(value: u8) -> Option<&'static str> {
            // `match` takes the first arm, so 0x00 reads "Success".
            #[allow(unreachable_patterns)]
            match value {
                $($value => Some($text),)*
                _ => None,
            }
        }
    };
}

reason_codes! {
    SUCCESS = 0x00, "Success";
    NORMAL_DISCONNECTION = 0x00, "Normal disconnection";
    GRANTED_QOS_0 = 0x00, "Granted QoS 0";
    GRANTED_QOS_1 = 0x01, "Granted QoS 1";
    GRANTED_QOS_2 = 0x02, "Granted QoS 2";
    DISCONNECT_WITH_WILL_MESSAGE = 0x04, "Disconnect with Will Message";
    NO_MATCHING_SUBSCRIBERS = 0x10, "No matching subscribers";
    NO_SUBSCRIPTION_EXISTED = 0x11, "No subscription existed";
    CONTINUE_AUTHENTICATION = 0x18, "Continue authentication";
    RE_AUTHENTICATE = 0x19, "Re-authenticate";
    UNSPECIFIED_ERROR = 0x80, "Unspecified error";
    MALFORMED_PACKET = 0x81, "Malformed Packet";
    PROTOCOL_ERROR = 0x82, "Protocol Error";
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83, "Implementation specific error";
    UNSUPPORTED_PROTOCOL_VERSION = 0x84, "Unsupported Protocol Version";
    CLIENT_IDENTIFIER_NOT_VALID = 0x85, "Client Identifier not valid";
    BAD_USER_NAME_OR_PASSWORD = 0x86, "Bad User Name or Password";
    NOT_AUTHORIZED = 0x87, "Not authorized";
    SERVER_UNAVAILABLE = 0x88, "Server unavailable";
    SERVER_BUSY = 0x89, "Server busy";
    BANNED = 0x8A, "Banned";
    SERVER_SHUTTING_DOWN = 0x8B, "Server shutting down";
    BAD_AUTHENTICATION_METHOD = 0x8C, "Bad authentication method";
    KEEP_ALIVE_TIMEOUT = 0x8D, "Keep Alive timeout";
    SESSION_TAKEN_OVER = 0x8E, "Session taken over";
    TOPIC_FILTER_INVALID = 0x8F, "Topic Filter invalid";
    TOPIC_NAME_INVALID = 0x90, "Topic Name invalid";
    PACKET_IDENTIFIER_IN_USE = 0x91, "Packet Identifier in use";
    PACKET_IDENTIFIER_NOT_FOUND = 0x92, "Packet Identifier not found";
    RECEIVE_MAXIMUM_EXCEEDED = 0x93, "Receive Maximum exceeded";
    TOPIC_ALIAS_INVALID = 0x94, "Topic Alias invalid";
    PACKET_TOO_LARGE = 0x95, "Packet too large";
    MESSAGE_RATE_TOO_HIGH = 0x96, "Message rate too high";
    QUOTA_EXCEEDED = 0x97, "Quota exceeded";
    ADMINISTRATIVE_ACTION = 0x98, "Administrative action";
    PAYLOAD_FORMAT_INVALID = 0x99, "Payload format invalid";
    RETAIN_NOT_SUPPORTED = 0x9A, "Retain not supported";
    QOS_NOT_SUPPORTED = 0x9B, "QoS not supported";
    USE_ANOTHER_SERVER = 0x9C, "Use another server";
    SERVER_MOVED = 0x9D, "Server moved";
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E, "Shared Subscriptions not supported";
    CONNECTION_RATE_EXCEEDED = 0x9F, "Connection rate exceeded";
    MAXIMUM_CONNECT_TIME = 0xA0, "Maximum connect time";
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1, "Subscription Identifiers not supported";
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2, "Wildcard Subscriptions not supported";
}

const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

impl ReasonCode {
    /// Whether this code reports a failure (0x80 and above, MQTT 5.0 §2.4).
    pub const fn is_error(self) -> bool {
        self.0 >= 0x80
    }

    /// The specification's name for this value.
    pub fn text(self) -> &'static str {
        text(self.0).unwrap_or("Unknown reason code")
    }

    /// The reason codes MQTT 5.0 allows in `packet`, or `None` for a packet
    /// that carries none.
    pub fn allowed_in(packet: PacketType) -> Option<&'static [u8]> {
        match packet {
            PacketType::ConnAck => Some(CONNACK),
            PacketType::PubAck | PacketType::PubRec => Some(PUBACK_PUBREC),
            PacketType::PubRel | PacketType::PubComp => Some(PUBREL_PUBCOMP),
            PacketType::SubAck => Some(SUBACK),
            PacketType::UnsubAck => Some(UNSUBACK),
            PacketType::Disconnect => Some(DISCONNECT),
            PacketType::Auth => Some(AUTH),
            _ => None,
        }
    }

    /// Whether MQTT 5.0 allows this code in `packet`.
    pub fn is_allowed_in(self, packet: PacketType) -> bool {
        Self::allowed_in(packet).is_some_and(|set| set.contains(&self.0))
    }

    /// The MQTT 3.1 / 3.1.1 CONNACK return code for this reason (3.1.1 §3.2.2.3).
    /// Failures that 3.x has no code for are reported as "server unavailable",
    /// as Mosquitto does.
    pub const fn to_connect_return_code(self) -> u8 {
        match self.0 {
            0x00 => 0,
            0x84 => 1,
            0x85 => 2,
            0x86 => 4,
            0x87 | 0x8A | 0x8C => 5,
            _ => 3,
        }
    }

    /// The reason for an MQTT 3.1 / 3.1.1 CONNACK return code 0 to 5.
    pub const fn from_connect_return_code(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => ReasonCode::SUCCESS,
            1 => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            2 => ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            3 => ReasonCode::SERVER_UNAVAILABLE,
            4 => ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            5 => ReasonCode::NOT_AUTHORIZED,
            _ => return None,
        })
    }

    /// Whether `version` can carry this code in `packet`: 3.x SUBACK carries only
    /// the granted QoS or 0x80, 3.x CONNACK any v5 CONNACK code, mapped
    /// to the nearest return code.
    pub fn is_valid_for(self, packet: PacketType, version: ProtocolVersion) -> bool {
        if version.is_v5() {
            return self.is_allowed_in(packet);
        }
        match packet {
            PacketType::SubAck => matches!(self.0, 0x00 | 0x01 | 0x02 | 0x80),
            // Mapped to the nearest 3.x return code when encoded.
            PacketType::ConnAck => self.is_allowed_in(packet),
            _ => self == ReasonCode::SUCCESS,
        }
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode({:#04x} {})", self.0, self.text())
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#04x} ({})", self.0, self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specification() {
        assert_eq!(ReasonCode::SUCCESS.text(), "Success");
        assert_eq!(ReasonCode(0x95).text(), "Packet too large");
        assert_eq!(ReasonCode(0x03).text(), "Unknown reason code");
    }

    #[test]
    fn connect_return_codes_round_trip() {
        for code in 0..=5 {
            let reason = ReasonCode::from_connect_return_code(code).unwrap();
            assert_eq!(reason.to_connect_return_code(), code);
        }
        assert_eq!(ReasonCode::BANNED.to_connect_return_code(), 5);
        assert_eq!(ReasonCode::SERVER_BUSY.to_connect_return_code(), 3);
    }

    #[test]
    fn per_packet_sets() {
        assert!(ReasonCode::NO_MATCHING_SUBSCRIBERS.is_allowed_in(PacketType::PubAck));
        assert!(!ReasonCode::NO_MATCHING_SUBSCRIBERS.is_allowed_in(PacketType::PubRel));
        assert!(ReasonCode::SESSION_TAKEN_OVER.is_allowed_in(PacketType::Disconnect));
        assert!(!ReasonCode::SESSION_TAKEN_OVER.is_allowed_in(PacketType::ConnAck));
        assert!(ReasonCode::allowed_in(PacketType::PingReq).is_none());
    }
}
