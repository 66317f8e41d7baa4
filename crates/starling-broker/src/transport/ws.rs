//! The server side of the WebSocket handshake for a `protocol websockets`
//! listener: the path, the origin allow-list and the `mqtt` subprotocol.
//!
//! - Path: Mosquitto 2.0 (libwebsockets) upgrades whatever path is asked for,
//!   and so does Starling by default; `websockets_path` restricts it to one
//!   (anything else: 404).
//! - Origin: with `websockets_origin` (Mosquitto 2.1), the request's `Origin`
//!   header must be one of those given, compared exactly (ASCII case aside);
//!   a request without one is refused too (403). Without the option any
//!   origin is accepted, as in Mosquitto 2.0.
//! - Subprotocol: "the WebSocket Subprotocol name selected and returned by the
//!   Server MUST be 'mqtt'" [MQTT-6.0.0-4]; MQTT 3.1 clients offer `mqttv3.1`,
//!   which Mosquitto echoes too. A request offering only other subprotocols is
//!   refused (400); one offering none is accepted without the header, as
//!   Mosquitto 2.0 does.
//!
//! Mosquitto's `http_dir` (serving files) is not supported. Frames and
//! messages are bounded by the maximum packet size ([`starling_transport::ws::config`]).

use starling_transport::ws::{self, WsStream, SUBPROTOCOLS};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::config::WebSocketSettings;

/// Why a WebSocket upgrade was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WsHandshakeError {
    /// Refused by our rules (path, origin, subprotocol) with this status.
    #[error("WebSocket upgrade refused ({status}): {reason}")]
    Refused {
        /// The HTTP status sent.
        status: StatusCode,
        /// Why.
        reason: String,
    },
    /// Not a valid WebSocket upgrade, or the connection failed during it.
    #[error("WebSocket handshake failed: {0}")]
    Failed(WsError),
}

/// Performs the server handshake on `stream` under `settings`.
pub async fn accept<S>(
    stream: S,
    settings: &WebSocketSettings,
    max_packet: usize,
) -> Result<WsStream<S>, WsHandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut refusal = None;
    // The signature is tungstenite's `Callback`, error response and all.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| match check(request, settings) {
        Ok(subprotocol) => {
            if let Some(subprotocol) = subprotocol {
                response.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static(subprotocol),
                );
            }
            Ok(response)
        }
        Err((status, reason)) => {
            refusal = Some((status, reason.clone()));
            let mut error = ErrorResponse::new(Some(reason));
            *error.status_mut() = status;
            Err(error)
        }
    };
    let accepted = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(ws::config(max_packet)),
    )
    .await;
    match (accepted, refusal) {
        (Ok(socket), _) => Ok(WsStream::new(socket)),
        (Err(_), Some((status, reason))) => Err(WsHandshakeError::Refused { status, reason }),
        (Err(e), None) => Err(WsHandshakeError::Failed(e)),
    }
}

/// The subprotocol to answer with, or the status and reason of a refusal.
fn check(
    request: &Request,
    settings: &WebSocketSettings,
) -> Result<Option<&'static str>, (StatusCode, String)> {
    if let Some(path) = &settings.path {
        if request.uri().path() != path {
            return Err((
                StatusCode::NOT_FOUND,
                format!("path {} is not {path}", request.uri().path()),
            ));
        }
    }
    if !settings.origins.is_empty() {
        let origin = request
            .headers()
            .get("Origin")
            .and_then(|o| o.to_str().ok());
        let allowed = origin.is_some_and(|origin| {
            settings
                .origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        });
        if !allowed {
            return Err((
                StatusCode::FORBIDDEN,
                format!("origin {} is not allowed", origin.unwrap_or("(none)")),
            ));
        }
    }
    let offered: Vec<&str> = request
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    if offered.is_empty() {
        return Ok(None);
    }
    // `mqtt` if offered, else the first other name we speak.
    let chosen = SUBPROTOCOLS
        .iter()
        .find(|ours| offered.iter().any(|name| name.eq_ignore_ascii_case(ours)));
    match chosen {
        Some(name) => Ok(Some(name)),
        None => Err((
            StatusCode::BAD_REQUEST,
            format!(
                "subprotocol {} is not mqtt [MQTT-6.0.0-3]",
                offered.join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn any_path_unless_one_is_set() {
        let any = WebSocketSettings::default();
        assert_eq!(check(&request("/whatever", &[]), &any), Ok(None));
        let one = WebSocketSettings {
            path: Some("/mqtt".into()),
            ..Default::default()
        };
        assert!(check(&request("/mqtt", &[]), &one).is_ok());
        assert_eq!(
            check(&request("/other", &[]), &one).unwrap_err().0,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn subprotocols() {
        let any = WebSocketSettings::default();
        let offered = |value| check(&request("/", &[("Sec-WebSocket-Protocol", value)]), &any);
        assert_eq!(offered("mqtt"), Ok(Some("mqtt")));
        assert_eq!(offered("mqttv3.1"), Ok(Some("mqttv3.1")));
        assert_eq!(offered("mqttv3.1, mqtt"), Ok(Some("mqtt")));
        assert_eq!(offered("chat").unwrap_err().0, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn origins() {
        let settings = WebSocketSettings {
            path: None,
            origins: vec!["https://example.org".into()],
        };
        let with = |origin| check(&request("/", &[("Origin", origin)]), &settings);
        assert!(with("https://example.org").is_ok());
        assert!(with("https://EXAMPLE.org").is_ok());
        assert_eq!(
            with("https://evil.example").unwrap_err().0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            check(&request("/", &[]), &settings).unwrap_err().0,
            StatusCode::FORBIDDEN
        );
    }
}
