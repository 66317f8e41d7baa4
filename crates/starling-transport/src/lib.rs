//! The byte streams under MQTT that the broker and the client share, so that
//! each exists once:
//!
//! - [`ws`]: a WebSocket connection seen as a plain byte stream
//!   (`AsyncRead + AsyncWrite`) of binary messages, so the one MQTT codec runs
//!   over it exactly as over TCP, whichever way packets are split across
//!   messages or packed into them;
//! - [`pem`]: certificates, private keys, CA stores and certificate
//!   revocation lists read from PEM files, for rustls.
//!
//! No MQTT here: this crate knows bytes, TLS material and WebSocket framing.
//! The TLS handshakes themselves (tokio-rustls) and the WebSocket handshakes
//! (tokio-tungstenite) are driven by the broker and the client, which each
//! have their own rules (client certificates, origins, subprotocols).

pub mod pem;
pub mod ws;

pub use ws::WsStream;

/// The largest MQTT packet there can be: a fixed header of 5 bytes and a
/// Remaining Length of at most 268,435,455 (MQTT 5.0 §1.5.5, 3.1.1 §2.2.3).
pub const MAX_MQTT_PACKET: usize = 268_435_455 + 5;
