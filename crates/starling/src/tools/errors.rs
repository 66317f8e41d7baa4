//! How the tools fail: [`Fail`] (a message, whether Mosquitto's "Use ... --help"
//! line follows, whether `--quiet` hides it, the exit status), and Mosquitto's
//! words for what goes wrong: `mosquitto_connack_string()`,
//! `mosquitto_reason_string()`, `mosquitto_strerror()` and `strerror()`.
//!
//! Exit statuses are Mosquitto's: 1 for bad arguments and for failures before
//! the connection (unreachable broker, unknown host, unusable TLS files, OpenSSL
//! engines); the CONNACK code when the broker refuses the connection
//! (3.x return code or 5.0 reason code); 7 when the connection is lost (a TLS
//! alert after the handshake too); 8 when the TLS handshake fails; 27 when
//! `-W` times out.

use starling_client::{Error, ProtocolVersion, ReasonCode};

use super::args::Tool;

/// Why a tool stops with a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fail {
    /// What is printed on stderr, with its trailing newlines.
    pub(crate) message: String,
    /// Whether "\nUse 'starling TOOL --help' to see usage." follows.
    pub(crate) usage_hint: bool,
    /// Whether `--quiet` hides the message (Mosquitto's `err_printf`).
    pub(crate) quiet_suppresses: bool,
    /// The exit status.
    pub(crate) code: u8,
}

impl Fail {
    /// A bad argument: the message, then the usage hint; exit status 1.
    pub(crate) fn usage(message: impl Into<String>) -> Fail {
        Fail {
            message: message.into(),
            usage_hint: true,
            quiet_suppresses: false,
            code: 1,
        }
    }

    /// A failure reported in one line that `--quiet` hides.
    pub(crate) fn plain(message: impl Into<String>, code: u8) -> Fail {
        Fail {
            message: message.into(),
            usage_hint: false,
            quiet_suppresses: true,
            code,
        }
    }

    /// Prints the failure for `tool` (unless `quiet` hides it).
    pub(crate) fn report(&self, tool: Tool, quiet: bool) {
        let mut text = String::new();
        if !(quiet && self.quiet_suppresses) {
            text.push_str(&self.message);
        }
        if self.usage_hint {
            text.push_str(&format!(
                "\nUse 'starling {} --help' to see usage.\n",
                tool.name()
            ));
        }
        if !text.is_empty() {
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// `mosquitto_connack_string()`: an MQTT 3.x CONNACK return code.
pub(crate) fn connack_string(code: u8) -> &'static str {
    match code {
        0 => "Connection Accepted.",
        1 => "Connection Refused: unacceptable protocol version.",
        2 => "Connection Refused: identifier rejected.",
        3 => "Connection Refused: broker unavailable.",
        4 => "Connection Refused: bad user name or password.",
        5 => "Connection Refused: not authorised.",
        _ => "Connection Refused: unknown reason.",
    }
}

/// `mosquitto_reason_string()`: an MQTT 5.0 reason code.
pub(crate) fn reason_string(code: u8) -> &'static str {
    match code {
        0x00 => "Success",
        0x01 => "Granted QoS 1",
        0x02 => "Granted QoS 2",
        0x04 => "Disconnect with Will Message",
        0x10 => "No matching subscribers",
        0x11 => "No subscription existed",
        0x18 => "Continue authentication",
        0x19 => "Re-authenticate",
        0x80 => "Unspecified error",
        0x81 => "Malformed Packet",
        0x82 => "Protocol Error",
        0x83 => "Implementation specific error",
        0x84 => "Unsupported Protocol Version",
        0x85 => "Client Identifier not valid",
        0x86 => "Bad User Name or Password",
        0x87 => "Not authorized",
        0x88 => "Server unavailable",
        0x89 => "Server busy",
        0x8A => "Banned",
        0x8B => "Server shutting down",
        0x8C => "Bad authentication method",
        0x8D => "Keep Alive timeout",
        0x8E => "Session taken over",
        0x8F => "Topic Filter invalid",
        0x90 => "Topic Name invalid",
        0x91 => "Packet Identifier in use",
        0x92 => "Packet Identifier not found",
        0x93 => "Receive Maximum exceeded",
        0x94 => "Topic Alias invalid",
        0x95 => "Packet too large",
        0x96 => "Message rate too high",
        0x97 => "Quota exceeded",
        0x98 => "Administrative action",
        0x99 => "Payload format invalid",
        0x9A => "Retain not supported",
        0x9B => "QoS not supported",
        0x9C => "Use another server",
        0x9D => "Server moved",
        0x9E => "Shared Subscriptions not supported",
        0x9F => "Connection rate exceeded",
        0xA0 => "Maximum connect time",
        0xA1 => "Subscription identifiers not supported",
        0xA2 => "Wildcard Subscriptions not supported",
        _ => "Unknown reason",
    }
}

/// `strerror(errno)` for an I/O error: its text without Rust's " (os error N)".
pub(crate) fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) if error.raw_os_error().is_some() => text[..at].to_owned(),
        _ => text,
    }
}

/// The broker refused the connection: "Connection error: ..." in Mosquitto's
/// words, and the CONNACK code as the exit status. (Mosquitto follows it with a
/// second line, "Error: The connection was refused.", which says nothing more.)
pub(crate) fn refused(tool: Tool, version: ProtocolVersion, code: ReasonCode) -> Fail {
    if !version.is_v5() {
        let rc = code.to_connect_return_code();
        return Fail::plain(format!("Connection error: {}\n", connack_string(rc)), rc);
    }
    let text = reason_string(code.0);
    let message = if code == ReasonCode::UNSUPPORTED_PROTOCOL_VERSION {
        match tool {
            Tool::Rr => format!(
                "Connection error: {text}. starling rr only supports connecting to an MQTT v5 broker\n"
            ),
            Tool::Pub | Tool::Sub => format!(
                "Connection error: {text}. Try connecting to an MQTT v5 broker, or use MQTT v3.x mode.\n"
            ),
        }
    } else {
        format!("Connection error: {text}\n")
    };
    Fail::plain(message, code.0)
}

/// A failure of the connection or of a request, once connecting has started.
pub(crate) fn client_error(tool: Tool, version: ProtocolVersion, error: &Error) -> Fail {
    const LOST: &str = "Error: The connection was lost.\n";
    match error {
        Error::Refused(code) => refused(tool, version, *code),
        // A TLS alert or a broken TLS record: the TLS stream's only InvalidData.
        Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => Fail::plain(LOST, 7),
        Error::Io(e) => Fail::plain(format!("Error: {}\n", strerror(e)), 1),
        Error::ConnectTimeout(after) => Fail::plain(
            format!(
                "Error: No CONNACK from the broker within {} s.\n",
                after.as_secs()
            ),
            7,
        ),
        Error::Protocol(_) | Error::Decode(_) => Fail::plain(
            "Error: A network protocol error occurred when communicating with the broker.\n",
            2,
        ),
        Error::ServerDisconnect { reason_code, .. } => Fail::plain(
            format!(
                "Error: The connection was lost: the broker sent DISCONNECT ({}).\n",
                reason_string(reason_code.0)
            ),
            7,
        ),
        Error::PacketTooLarge { .. } => Fail::plain("Error: Message payload is too large.\n", 9),
        Error::Unsupported(what) => Fail::plain(
            format!("Error: This feature is not supported: {what}.\n"),
            10,
        ),
        Error::InvalidOption { option, reason } => {
            Fail::plain(format!("Error: Invalid {option}: {reason}.\n"), 1)
        }
        Error::Topic(e) => Fail::plain(format!("Error: Invalid topic: {e}.\n"), 3),
        Error::Tls(_) => Fail::plain("Error: A TLS error occurred.\n", 8),
        _ => Fail::plain(LOST, 7),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_mosquittos_and_exit_with_the_code() {
        let fail = refused(
            Tool::Pub,
            ProtocolVersion::V3_1_1,
            ReasonCode::NOT_AUTHORIZED,
        );
        assert_eq!(
            (fail.message.as_str(), fail.code),
            ("Connection error: Connection Refused: not authorised.\n", 5)
        );
        let fail = refused(Tool::Sub, ProtocolVersion::V5, ReasonCode::NOT_AUTHORIZED);
        assert_eq!(
            (fail.message.as_str(), fail.code),
            ("Connection error: Not authorized\n", 135)
        );
    }

    #[test]
    fn strerror_drops_rusts_suffix() {
        let e = std::io::Error::from_raw_os_error(111);
        assert_eq!(strerror(&e), "Connection refused");
    }
}
