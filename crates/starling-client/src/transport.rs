//! `Transport`: the byte stream to the broker, chosen by the URL scheme.
//!
//! An enum rather than a trait object so that the connection task stays one
//! concrete type; TLS (`mqtts://`) and WebSocket (`ws://`, `wss://`) become new
//! variants here with their `connect` arms and their `AsyncRead`/`AsyncWrite`
//! delegation, and nothing above this file changes. Until then those schemes
//! fail at connect with [`Error::Unsupported`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::error::Error;
use crate::options::{BrokerUrl, Scheme};

/// The message for schemes whose transport is not written yet.
pub(crate) const TLS_WS_UNSUPPORTED: &str = "TLS/WebSocket transport lands with the security issue";

/// An open connection to the broker.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP (`mqtt://`).
    Tcp(TcpStream),
}

impl Transport {
    /// Opens the transport `url` names.
    pub(crate) async fn connect(url: &BrokerUrl) -> Result<Transport, Error> {
        match url.scheme {
            Scheme::Mqtt => {
                let stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
                // MQTT packets are small and latency matters more than batching,
                // which the connection task does itself (one write per batch).
                stream.set_nodelay(true)?;
                Ok(Transport::Tcp(stream))
            }
            Scheme::Mqtts | Scheme::Ws | Scheme::Wss => Err(Error::Unsupported(TLS_WS_UNSUPPORTED)),
        }
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_read(cx, buf),
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(stream) => Pin::new(stream).poll_shutdown(cx),
        }
    }
}
