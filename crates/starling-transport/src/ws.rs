//! MQTT over WebSocket as a byte stream.
//!
//! MQTT 5.0 §6.0 (and 3.1.1 §6): packets travel in WebSocket **binary** data
//! frames; "a single WebSocket data frame can contain multiple or partial MQTT
//! Control Packets" [MQTT-6.0.0-2]. So the receiver must not assume one packet
//! per message. [`WsStream`] turns the message stream back into bytes: reads
//! yield the payloads of binary messages one after the other, and each write
//! becomes one binary message. The codec above it then frames packets exactly
//! as it does over TCP.
//!
//! A text frame ends the stream with an error [MQTT-6.0.0-1]; pings are
//! answered by tungstenite itself; a Close frame reads as end of stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_core::Stream;
use futures_sink::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket subprotocol of MQTT: the server selects and returns it
/// [MQTT-6.0.0-4], and clients offer it.
pub const SUBPROTOCOL: &str = "mqtt";

/// Subprotocol names a server accepts: `mqtt`, and `mqttv3.1`, which MQTT 3.1
/// clients offer (Mosquitto 2.0 accepts both and echoes the one offered).
pub const SUBPROTOCOLS: &[&str] = &["mqtt", "mqttv3.1"];

/// The WebSocket limits for an MQTT connection whose largest packet is
/// `max_packet`: no frame and no message may be larger, so tungstenite never
/// buffers more than the MQTT decoder would. (Packets may still be split
/// across messages, or several packed into one, within that bound.)
pub fn config(max_packet: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(max_packet))
        .max_frame_size(Some(max_packet))
        // Eagerly allocated per connection; the default is 128 KiB.
        .read_buffer_size(16 * 1024)
        // Each write is one batch of packets already: send it at once.
        .write_buffer_size(0)
}

/// A WebSocket connection as an `AsyncRead + AsyncWrite` byte stream of binary
/// messages.
///
/// Writes are queued in tungstenite until `flush`: callers must flush after
/// each batch, as they must for TLS.
#[derive(Debug)]
pub struct WsStream<S> {
    inner: WebSocketStream<S>,
    /// What is left of the last binary message.
    pending: Bytes,
    /// The peer closed: reads return end of stream.
    eof: bool,
}

impl<S> WsStream<S> {
    /// Wraps an open WebSocket (after the handshake).
    pub fn new(inner: WebSocketStream<S>) -> Self {
        WsStream {
            inner,
            pending: Bytes::new(),
            eof: false,
        }
    }

    /// The stream under the WebSocket (a TCP or TLS stream).
    pub fn get_ref(&self) -> &S
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.inner.get_ref()
    }
}

/// Maps a WebSocket error to the I/O error a byte stream would give.
fn io_error(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::NotConnected, "the WebSocket is closed")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                // Answered (pings) or nothing to do (pongs); raw frames are
                // never yielded by a read.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    this.eof = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "[MQTT-6.0.0-1] a WebSocket text frame: MQTT travels in binary frames",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => this.eof = true,
                Some(Err(e)) => {
                    this.eof = true;
                    return Poll::Ready(Err(io_error(e)));
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_ready(cx)).map_err(io_error)?;
        Pin::new(&mut this.inner)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner)
            .poll_flush(cx)
            .map_err(io_error)
    }

    /// Sends a Close frame and flushes it (the close handshake is not awaited:
    /// the socket closes when the stream is dropped).
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.get_mut().inner).poll_close(cx)) {
            Ok(()) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Poll::Ready(Ok(())),
            Err(e) => Poll::Ready(Err(io_error(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    async fn pair() -> (
        WsStream<tokio::io::DuplexStream>,
        WebSocketStream<tokio::io::DuplexStream>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let server = WebSocketStream::from_raw_socket(a, Role::Server, Some(config(1024))).await;
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        (WsStream::new(server), client)
    }

    async fn send(client: &mut WebSocketStream<tokio::io::DuplexStream>, message: Message) {
        std::future::poll_fn(|cx| Pin::new(&mut *client).poll_ready(cx))
            .await
            .unwrap();
        Pin::new(&mut *client).start_send(message).unwrap();
        std::future::poll_fn(|cx| Pin::new(&mut *client).poll_flush(cx))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn messages_read_as_one_byte_stream() {
        let (mut server, mut client) = pair().await;
        // One packet split across two messages, then two packed into one.
        send(&mut client, Message::binary(vec![0xC0])).await;
        send(
            &mut client,
            Message::binary(vec![0x00, 0xC0, 0x00, 0xE0, 0x00]),
        )
        .await;
        let mut got = [0u8; 6];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(got, [0xC0, 0x00, 0xC0, 0x00, 0xE0, 0x00]);
    }

    #[tokio::test]
    async fn a_text_frame_is_an_error() {
        let (mut server, mut client) = pair().await;
        send(&mut client, Message::text("CONNECT")).await;
        let mut got = [0u8; 1];
        let error = server.read(&mut got).await.unwrap_err();
        assert!(error.to_string().contains("MQTT-6.0.0-1"), "{error}");
    }

    #[tokio::test]
    async fn close_reads_as_end_of_stream_and_writes_are_binary_messages() {
        let (mut server, mut client) = pair().await;
        server.write_all(&[0xD0, 0x00]).await.unwrap();
        server.flush().await.unwrap();
        let message = std::future::poll_fn(|cx| Pin::new(&mut client).poll_next(cx))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::binary(vec![0xD0, 0x00]));
        send(&mut client, Message::Close(None)).await;
        let mut got = Vec::new();
        assert_eq!(server.read_to_end(&mut got).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused() {
        let (mut server, mut client) = pair().await;
        send(&mut client, Message::binary(vec![0u8; 2000])).await;
        let mut got = [0u8; 1];
        assert!(server.read(&mut got).await.is_err());
    }
}
