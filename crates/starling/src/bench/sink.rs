//! The `--discard` peer: a TCP server on 127.0.0.1 that stands in for a
//! broker, one thread per connection, outside the bench's runtime. It answers
//! CONNECT with CONNACK and then either reads and throws away everything
//! (`pub`: measures how fast the generator publishes) or answers SUBSCRIBE
//! with SUBACK and sends QoS 0 PUBLISH packets as fast as it can (`sub`:
//! measures how fast the generator receives, decodes and accounts).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use bytes::BytesMut;
use starling_proto::{PacketId, ProtocolVersion, QoS, TopicName};

use super::payload::{now_ns, Header, Template};

/// What the peer sends to subscribers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub(crate) version: ProtocolVersion,
    /// Payload bytes.
    pub(crate) size: usize,
}

/// A running peer; its threads end with the process.
#[derive(Debug)]
pub(crate) struct Sink {
    addr: SocketAddr,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    /// Starts a discarding peer, or a flooding one with `source`.
    pub(crate) fn start(source: Option<Source>) -> io::Result<Sink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&bytes);
        thread::Builder::new()
            .name("discard-peer".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let counter = Arc::clone(&counter);
                    let _ = thread::Builder::new()
                        .name("discard-conn".into())
                        .spawn(move || serve(stream, &counter, source));
                }
            })?;
        Ok(Sink { addr, bytes })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Bytes read after the CONNECTs, over all connections.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

fn serve(mut stream: TcpStream, counter: &AtomicU64, source: Option<Source>) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0;
    let (len, body) = next_frame(&mut stream, &mut buf, &mut have)?;
    // CONNECT's variable header: the protocol name, then the level.
    let name_len = usize::from(u16::from_be_bytes([buf[body], buf[body + 1]]));
    let level = buf[body + 2 + name_len];
    let connack: &[u8] = if level == 5 {
        &[0x20, 0x03, 0x00, 0x00, 0x00]
    } else {
        &[0x20, 0x02, 0x00, 0x00]
    };
    stream.write_all(connack)?;
    buf.copy_within(len..have, 0);
    have -= len;
    match source {
        None => {
            counter.fetch_add(have as u64, Ordering::Relaxed);
            loop {
                let n = stream.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        Some(source) => {
            // SUBSCRIBE: its packet identifier opens the variable header.
            let (_, body) = next_frame(&mut stream, &mut buf, &mut have)?;
            let id = [buf[body], buf[body + 1]];
            let suback: &[u8] = if level == 5 {
                &[0x90, 0x04, id[0], id[1], 0x00, 0x00]
            } else {
                &[0x90, 0x03, id[0], id[1], 0x00]
            };
            stream.write_all(suback)?;
            flood(stream, source)
        }
    }
}

/// Sends QoS 0 PUBLISH packets of publisher 0 on `bench/0` until the
/// connection fails (the subscriber has gone).
fn flood(mut stream: TcpStream, source: Source) -> io::Result<()> {
    let topic = TopicName::from_static("bench/0");
    let template = Template::new(topic, QoS::AtMostOnce, source.size, source.version)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let batch = (64 * 1024 / template.len()).max(1);
    let mut out = BytesMut::with_capacity(batch * template.len());
    let mut seq = 0;
    loop {
        let sent = now_ns();
        for _ in 0..batch {
            let header = Header {
                publisher: 0,
                seq,
                sent,
            };
            template.put(&mut out, PacketId::MIN, header);
            seq += 1;
        }
        stream.write_all(&out)?;
        out.clear();
    }
}

/// Reads until `buf[..have]` starts with a whole packet; returns its length
/// and where its body starts.
fn next_frame(
    stream: &mut TcpStream,
    buf: &mut [u8],
    have: &mut usize,
) -> io::Result<(usize, usize)> {
    loop {
        if let Some(frame) = frame(&buf[..*have]) {
            return Ok(frame);
        }
        if *have == buf.len() {
            return Err(io::Error::other("packet too large for the discard peer"));
        }
        let n = stream.read(&mut buf[*have..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        *have += n;
    }
}

/// The length of the packet at the start of `buf` and where its body starts,
/// once it is all there.
fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let mut remaining = 0usize;
    let mut i = 1;
    loop {
        let byte = *buf.get(i)?;
        remaining |= usize::from(byte & 0x7F) << (7 * (i - 1));
        i += 1;
        if byte & 0x80 == 0 || i > 4 {
            break;
        }
    }
    let len = i + remaining;
    (buf.len() >= len).then_some((len, i))
}
