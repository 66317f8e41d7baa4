//! The load generator's byte stream: TCP, or TLS over TCP (`--cafile`), with
//! the readiness calls the generator is built on (`readable`, then read what
//! is there without waiting), so that TLS runs the same loops as TCP.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BufMut;
use starling_transport::tls::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A connection to the broker.
#[derive(Debug)]
pub(crate) enum BenchStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl BenchStream {
    /// Waits until a read may return something: bytes TLS already decrypted,
    /// or bytes on the socket.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            BenchStream::Tcp(tcp) => tcp.readable().await,
            BenchStream::Tls(tls) if tls.buffered() > 0 => Ok(()),
            BenchStream::Tls(tls) => tls.get_ref().readable().await,
        }
    }

    /// Reads what is there into `buf`'s spare capacity, without waiting
    /// (`WouldBlock` if nothing is).
    pub(crate) fn try_read_buf<B: BufMut>(&mut self, buf: &mut B) -> io::Result<usize> {
        match self {
            BenchStream::Tcp(tcp) => tcp.try_read_buf(buf),
            BenchStream::Tls(tls) => {
                // Through a scratch buffer: one copy, small beside decryption.
                let mut scratch = [0u8; 16 * 1024];
                let want = scratch.len().min(buf.remaining_mut());
                let mut read = ReadBuf::new(&mut scratch[..want]);
                let mut cx = Context::from_waker(noop_waker());
                match Pin::new(&mut **tls).poll_read(&mut cx, &mut read) {
                    Poll::Ready(Ok(())) => {
                        let filled = read.filled();
                        buf.put_slice(filled);
                        Ok(filled.len())
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }

    /// Like [`Self::try_read_buf`] into a slice.
    pub(crate) fn try_read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut buf = &mut out[..];
        let before = buf.len();
        let n = self.try_read_buf(&mut buf)?;
        debug_assert!(before - buf.len() == n);
        Ok(n)
    }
}

/// A waker that does nothing: a read that would wait is `WouldBlock` here,
/// and the caller waits with [`BenchStream::readable`].
fn noop_waker() -> &'static Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    static WAKER: std::sync::OnceLock<Waker> = std::sync::OnceLock::new();
    WAKER.get_or_init(|| Waker::from(std::sync::Arc::new(Noop)))
}

impl AsyncRead for BenchStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BenchStream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            BenchStream::Tls(tls) => Pin::new(&mut **tls).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for BenchStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BenchStream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            BenchStream::Tls(tls) => Pin::new(&mut **tls).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BenchStream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            BenchStream::Tls(tls) => Pin::new(&mut **tls).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BenchStream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            BenchStream::Tls(tls) => Pin::new(&mut **tls).poll_shutdown(cx),
        }
    }
}
