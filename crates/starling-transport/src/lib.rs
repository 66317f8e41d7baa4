//! The byte streams under MQTT that the broker and the client share, so that
//! each exists once:
//!
//! - [`ws`]: a WebSocket connection seen as a plain byte stream
//!   (`AsyncRead + AsyncWrite`) of binary messages, so the one MQTT codec runs
//!   over it exactly as over TCP, whichever way packets are split across
//!   messages or packed into them;
//! - [`tls`]: TLS with OpenSSL for both sides: contexts built from
//!   Mosquitto's settings, handshakes, and the resulting byte stream.
//!
//! No MQTT here: this crate knows bytes, TLS and WebSocket framing. The
//! WebSocket handshakes (tokio-tungstenite) are driven by the broker and the
//! client, which each have their own rules (origins, subprotocols); what
//! a certificate or PSK identity means (a user name) is the broker's.

pub mod tls;
pub mod ws;

pub use ws::WsStream;

/// The largest MQTT packet there can be: a fixed header of 5 bytes and a
/// Remaining Length of at most 268,435,455 (MQTT 5.0 §1.5.5, 3.1.1 §2.2.3).
pub const MAX_MQTT_PACKET: usize = 268_435_455 + 5;
