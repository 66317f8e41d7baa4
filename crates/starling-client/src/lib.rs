//! Starling's MQTT client: an async tokio client for MQTT 3.1, 3.1.1 and 5.0 on
//! the `starling-proto` codec (the one the broker uses).
//!
//! ```no_run
//! use starling_client::{Client, ClientOptions, Event, QoS};
//!
//! # async fn run() -> Result<(), starling_client::Error> {
//! let options = ClientOptions::new("mqtt://127.0.0.1:1883")?.client_id("demo");
//! let (client, mut events) = Client::connect(options).await?;
//! client.subscribe_one("sensors/#", QoS::AtLeastOnce).await?;
//! let published = client.publish("sensors/1", "21.5", QoS::ExactlyOnce, false).await?;
//! println!("sent message {}", published.message_id);
//! while let Some(event) = events.recv().await {
//!     if let Event::Message(message) = event {
//!         println!("{}: {:?}", message.topic, message.payload);
//!         break;
//!     }
//! }
//! client.disconnect().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`options`]: [`ClientOptions`] (builder), the broker URL, the will, the
//!   reconnect policy;
//! - `state`: the protocol as a plain struct with time passed in (packet
//!   identifiers, QoS flows, the session across reconnections, Receive Maximum,
//!   Maximum Packet Size, incoming Topic Aliases); `keepalive`: when to ping;
//!   `backoff`: reconnection delays. None of these does I/O;
//! - `connection`: the tokio task that owns the socket (read, hand to the
//!   state, write the batch), `transport`: TCP, TLS (`mqtts://`), WebSocket
//!   (`ws://`, `wss://`); [`TlsOptions`]: CAs, client certificate, version;
//! - `client`: the [`Client`] handle and the [`Events`] stream;
//! - [`event`] and [`error`]: what the application receives.
//!
//! # Delivery across reconnections
//! With a reconnect policy, a lost connection is re-established with backoff.
//! Publishes made meanwhile wait in the offline queue (bounded: one more is
//! [`Error::QueueFull`]); subscribes and unsubscribes fail with
//! [`Error::NotConnected`]. If the broker resumes the session (Session
//! Present), unacknowledged QoS 1 and 2 PUBLISHes are sent again with DUP set
//! and their original Packet Identifiers, and PUBRELs again
//! [MQTT-4.4.0-1], so QoS 2 stays exactly once. If it does not (Clean Start, or
//! the session expired), they are sent again as new messages: QoS 1 and 2 are
//! then at least once, and a QoS 2 message whose PUBREC had arrived is complete.
//! Incoming QoS 2 messages are delivered once: a DUP resend of an identifier
//! not yet released is acknowledged and not delivered again.
//!
//! The client never has more QoS 1 and 2 publishes in flight than the broker's
//! Receive Maximum (and [`ClientOptions::max_inflight`]); the others wait for a
//! slot, in order. It sends no Topic Aliases, and resolves those the broker
//! sends (allowed with [`ClientOptions::topic_alias_maximum`]).
//!
//! # Shutdown
//! [`Client::disconnect`] sends DISCONNECT, shuts the socket down and ends the
//! connection task; dropping every [`Client`] handle does the same with reason
//! Normal. Requests still pending complete with [`Error::Closed`], and
//! [`Events`] yields its remaining events, then `None`. Without a reconnect
//! policy, a lost connection also ends the task (pending requests fail with
//! [`Error::ConnectionLost`]).

mod backoff;
mod client;
mod connection;
pub mod error;
pub mod event;
mod keepalive;
pub mod options;
mod state;
mod tls;
mod transport;

pub use client::{Client, Events};
pub use error::Error;
pub use event::{Direction, Event, Message, PacketObserver, PacketTrace, Published};
pub use options::{BrokerUrl, ClientOptions, LastWill, ReconnectPolicy, Scheme};
pub use tls::{TlsOptions, TlsVersion};

/// The protocol vocabulary the API speaks, from `starling-proto`.
pub use starling_proto::{
    property, ConnAck, Disconnect, MqttString, Packet, PacketId, PacketType, ProtocolVersion, QoS,
    ReasonCode, RetainHandling, SubAck, SubscriptionOptions, TopicFilter, TopicName, UnsubAck,
};

/// The clock as the state wants it, read through tokio so that tests with
/// paused time drive it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
