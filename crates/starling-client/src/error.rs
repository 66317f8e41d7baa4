//! `Error`: everything that can go wrong for a client, from a bad URL to a
//! broker that refuses the connection or stops answering pings.
//!
//! One enum for the whole crate (the sans-IO state and the tokio shell report the
//! same failures). It is `Clone` so that one cause (a lost connection, a closed
//! client) can complete every pending request, which is why I/O errors are kept
//! behind an `Arc`.

use std::sync::Arc;
use std::time::Duration;

use starling_proto::topic::TopicError;
use starling_proto::{DecodeError, EncodeError, MqttString, ReasonCode};

/// Why a client operation failed or a connection ended.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker URL could not be parsed.
    #[error("invalid broker URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option that cannot be sent as given (a client identifier that is not
    /// an MQTT string, a will topic with a wildcard, ...).
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Something this client or the broker does not support (a transport that is
    /// not there yet, a QoS above the broker's Maximum QoS, ...).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A topic name or filter that breaks the topic rules.
    #[error("invalid topic: {0}")]
    Topic(#[from] TopicError),
    /// The TCP connection (or name resolution) failed, or the socket broke.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// TLS could not be set up: a CA, certificate or key file that cannot be
    /// used, or a handshake that failed (the broker's certificate did not
    /// verify, or the broker refused ours).
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket upgrade failed (the broker answered something other than
    /// 101 Switching Protocols with the `mqtt` subprotocol).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The transport and the CONNECT/CONNACK exchange took longer than the
    /// connect timeout.
    #[error("no CONNACK within the connect timeout of {0:?}")]
    ConnectTimeout(Duration),
    /// The broker answered CONNECT with a failure. 3.x return codes are mapped
    /// as [`ReasonCode::from_connect_return_code`] does (2 is
    /// `CLIENT_IDENTIFIER_NOT_VALID`, 5 is `NOT_AUTHORIZED`, ...).
    #[error("connection refused by the broker: {0}")]
    Refused(ReasonCode),
    /// The broker refused a PUBLISH: its PUBACK or PUBREC carried a failure
    /// reason code (MQTT 5.0 only; 3.x brokers cannot say so).
    #[error("publish rejected by the broker: {reason_code}{}", reason_string.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    Rejected {
        /// The PUBACK's or PUBREC's reason code (0x80 or above).
        reason_code: ReasonCode,
        /// The Reason String the broker sent with it, if any.
        reason_string: Option<MqttString>,
    },
    /// The packet is larger than the broker's Maximum Packet Size; it was not sent.
    #[error("packet of {size} bytes exceeds the broker's maximum packet size of {max}")]
    PacketTooLarge {
        /// The encoded size of the packet.
        size: usize,
        /// The broker's limit.
        max: u32,
    },
    /// The offline queue holds as many publishes as it may; this one was not taken.
    #[error("offline queue full ({0} publishes waiting for a connection)")]
    QueueFull(usize),
    /// Every packet identifier is in use by an unacknowledged packet.
    #[error("all 65535 packet identifiers are in use")]
    PacketIdsExhausted,
    /// The request needs a live connection (SUBSCRIBE, UNSUBSCRIBE) and there is
    /// none at the moment; the client is reconnecting.
    #[error("not connected to the broker")]
    NotConnected,
    /// The connection was lost before the request completed.
    #[error("connection lost before the request completed")]
    ConnectionLost,
    /// The broker closed the TCP connection.
    #[error("the broker closed the connection")]
    ConnectionClosed,
    /// The broker sent DISCONNECT (MQTT 5.0).
    #[error("disconnected by the broker: {reason_code}{}", reason_string.as_ref().map(|s| format!(" ({s})")).unwrap_or_default())]
    ServerDisconnect {
        /// The DISCONNECT's reason code.
        reason_code: ReasonCode,
        /// The Reason String, if any.
        reason_string: Option<MqttString>,
    },
    /// No PINGRESP arrived within the keep alive after a PINGREQ.
    #[error("keep alive timeout: no PINGRESP within {0:?}")]
    KeepAliveTimeout(Duration),
    /// The broker sent bytes that are not a valid MQTT packet.
    #[error("malformed packet from the broker: {0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded (a binary field over 65,535 bytes, ...).
    #[error("cannot encode packet: {0}")]
    Encode(#[from] EncodeError),
    /// The broker broke a rule of the protocol (an unknown Topic Alias, a
    /// packet a broker may not send at that point, ...).
    #[error("protocol violation by the broker: {0}")]
    Protocol(&'static str),
    /// The client was closed, by [`Client::disconnect`](crate::Client::disconnect)
    /// or because every handle was dropped, before the request completed.
    #[error("the client is closed")]
    Closed,
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Error::Io(Arc::new(error))
    }
}
