//! `Transport`: the byte stream to the broker, chosen by the URL scheme:
//! TCP (`mqtt://`), TLS over TCP (`mqtts://`), MQTT over WebSocket (`ws://`)
//! and over WebSocket over TLS (`wss://`).
//!
//! An enum rather than a trait object so that the connection task stays one
//! concrete type. TLS and WebSocket streams hold written bytes until flushed
//! ([`Transport::buffers_writes`]); the connection task flushes after writing.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use starling_transport::tls::TlsStream;
use starling_transport::ws::{self, WsStream, SUBPROTOCOL};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::error::Error;
use crate::options::{BrokerUrl, ClientOptions, Scheme};

/// An open connection to the broker.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP (`mqtt://`).
    Tcp(TcpStream),
    /// TLS (`mqtts://`).
    Tls(Box<TlsStream<TcpStream>>),
    /// WebSocket (`ws://`).
    Ws(Box<WsStream<TcpStream>>),
    /// WebSocket over TLS (`wss://`).
    Wss(Box<WsStream<TlsStream<TcpStream>>>),
}

impl Transport {
    /// Opens the transport the options' URL names (from their bind address,
    /// if any), with their TLS options for `mqtts://` and `wss://`.
    pub(crate) async fn connect(options: &ClientOptions) -> Result<Transport, Error> {
        let url = &options.url;
        let tcp = match options.bind_address {
            None => TcpStream::connect((url.host.as_str(), url.port)).await?,
            Some(local) => connect_from(local, &url.host, url.port).await?,
        };
        // MQTT packets are small and latency matters more than batching,
        // which the connection task does itself (one write per batch).
        tcp.set_nodelay(true)?;
        // The broker's largest packet is not known before CONNACK: accept
        // WebSocket messages up to MQTT's largest, or the client's own limit.
        let max_packet = options
            .properties
            .maximum_packet_size
            .map_or(starling_transport::MAX_MQTT_PACKET, |max| {
                max.get() as usize
            });
        Ok(match url.scheme {
            Scheme::Mqtt => Transport::Tcp(tcp),
            Scheme::Mqtts => Transport::Tls(Box::new(tls(options, tcp).await?)),
            Scheme::Ws => Transport::Ws(Box::new(websocket(url, tcp, max_packet).await?)),
            Scheme::Wss => {
                let stream = tls(options, tcp).await?;
                Transport::Wss(Box::new(websocket(url, stream, max_packet).await?))
            }
        })
    }

    /// Whether written bytes may wait in the transport until a flush.
    pub(crate) fn buffers_writes(&self) -> bool {
        !matches!(self, Transport::Tcp(_))
    }
}

/// The TLS handshake; a broker certificate that does not verify fails it.
async fn tls(options: &ClientOptions, tcp: TcpStream) -> Result<TlsStream<TcpStream>, Error> {
    let tls = options.tls.clone().unwrap_or_default();
    let context = tls.context()?;
    let name = tls.server_name_for(&options.url.host);
    context
        .connect(name, tcp)
        .await
        .map_err(|e| Error::Tls(format!("handshake with {}: {e}", options.url)))
}

/// The WebSocket upgrade, offering the `mqtt` subprotocol [MQTT-6.0.0-3].
async fn websocket<S>(url: &BrokerUrl, stream: S, max_packet: usize) -> Result<WsStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let invalid = |reason: String| Error::InvalidOption {
        option: "url",
        reason,
    };
    let mut request = url
        .to_string()
        .into_client_request()
        .map_err(|e| invalid(format!("not a WebSocket URL: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (socket, _response) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(ws::config(max_packet)))
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Io(e) => Error::from(e),
                other => Error::WebSocket(format!("upgrade at {url} failed: {other}")),
            })?;
    Ok(WsStream::new(socket))
}

/// Connects to `host:port` from a socket bound to `local` (any port), trying
/// the broker's addresses of `local`'s family in turn.
async fn connect_from(local: IpAddr, host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last_error = None;
    for remote in tokio::net::lookup_host((host, port)).await? {
        if remote.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = if local.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(local, 0))?;
        match socket.connect(remote).await {
            Ok(stream) => return Ok(stream),
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "Address family not supported by protocol",
        )
    }))
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Tls(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Ws(stream) => Pin::new(stream).poll_read(cx, buf),
            Transport::Wss(stream) => Pin::new(stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Tls(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Ws(stream) => Pin::new(stream).poll_write(cx, buf),
            Transport::Wss(stream) => Pin::new(stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Tls(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Ws(stream) => Pin::new(stream).poll_flush(cx),
            Transport::Wss(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Tls(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Ws(stream) => Pin::new(stream).poll_shutdown(cx),
            Transport::Wss(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
