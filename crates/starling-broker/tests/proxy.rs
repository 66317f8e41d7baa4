//! `enable_proxy_protocol 1|2` listeners (Mosquitto 2.1; HAProxy's
//! proxy-protocol.txt): the header before anything else, handwritten here;
//! the client it names is the one the broker logs and limits; a connection
//! without a valid header never reaches MQTT.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::*;
use starling_broker::config::{ListenerSettings, ProxyProtocol};
use starling_broker::Config;
use starling_proto::{Packet, ProtocolVersion, ReasonCode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn proxied(version: ProxyProtocol) -> ListenerSettings {
    ListenerSettings {
        proxy_protocol: Some(version),
        ..Default::default()
    }
}

/// The log lines written while the returned guard lives (this thread only:
/// a current-thread test runtime runs the broker's tasks here too).
fn capture_log() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(Arc::clone(&log));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

fn logged(log: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

fn connect_bytes(version: ProtocolVersion, id: &str) -> BytesMut {
    let mut buf = BytesMut::new();
    Packet::Connect(Box::new(connect(version, id)))
        .encode(version, &mut buf)
        .unwrap();
    buf
}

fn v2_header(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend_from_slice(&(body.len() as u16).to_be_bytes());
    header.extend_from_slice(body);
    header
}

/// Sends `header` and CONNECT in one write (nothing of CONNECT may be eaten
/// by the header's parser) and returns the CONNACK's reason, or `None` if the
/// connection was closed.
async fn through(addr: SocketAddr, header: &[u8], id: &str) -> Option<ReasonCode> {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&connect_bytes(ProtocolVersion::V3_1_1, id));
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut raw = Raw::new(stream, ProtocolVersion::V3_1_1);
    raw.send_bytes(&bytes).await;
    match raw.try_recv().await {
        Ok(Packet::ConnAck(ack)) => Some(ack.reason_code),
        _ => None,
    }
}

#[tokio::test]
async fn v1_gives_the_client_address_to_the_log() {
    let (log, _guard) = capture_log();
    let served = Served::one(Config::default(), proxied(ProxyProtocol::V1)).await;
    let header = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n";
    assert_eq!(
        through(served.addr(), header, "v1-4").await,
        Some(ReasonCode::SUCCESS)
    );
    let header = b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 1883\r\n";
    assert_eq!(
        through(served.addr(), header, "v1-6").await,
        Some(ReasonCode::SUCCESS)
    );
    // UNKNOWN: the connection's own address.
    assert_eq!(
        through(served.addr(), b"PROXY UNKNOWN\r\n", "v1-unknown").await,
        Some(ReasonCode::SUCCESS)
    );
    served.stop().await;
    let text = logged(&log);
    assert!(
        text.contains("New client connected from 203.0.113.7:40000 as v1-4"),
        "{text}"
    );
    assert!(
        text.contains("New client connected from [2001:db8::7]:4000 as v1-6"),
        "{text}"
    );
    assert!(
        text.contains("New client connected from 127.0.0.1:"),
        "{text}"
    );
}

#[tokio::test]
async fn v2_gives_the_client_address_and_local_keeps_the_connection_s() {
    let (log, _guard) = capture_log();
    let served = Served::one(Config::default(), proxied(ProxyProtocol::V2)).await;
    let mut ipv4 = vec![198, 51, 100, 9, 127, 0, 0, 1];
    ipv4.extend_from_slice(&51000u16.to_be_bytes());
    ipv4.extend_from_slice(&1883u16.to_be_bytes());
    assert_eq!(
        through(served.addr(), &v2_header(1, 0x11, &ipv4), "v2-4").await,
        Some(ReasonCode::SUCCESS)
    );
    let mut ipv6 = Vec::new();
    ipv6.extend_from_slice(
        &"2001:db8::9"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    ipv6.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    ipv6.extend_from_slice(&[0x13, 0x88, 0x07, 0x5B]);
    // TLVs: PP2_TYPE_AUTHORITY "broker.example", then PP2_TYPE_NOOP.
    ipv6.extend_from_slice(&[0x02, 0x00, 14]);
    ipv6.extend_from_slice(b"broker.example");
    ipv6.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
    assert_eq!(
        through(served.addr(), &v2_header(1, 0x21, &ipv6), "v2-6").await,
        Some(ReasonCode::SUCCESS)
    );
    // LOCAL, the balancer's own health check.
    assert_eq!(
        through(served.addr(), &v2_header(0, 0x00, &[]), "v2-local").await,
        Some(ReasonCode::SUCCESS)
    );
    served.stop().await;
    let text = logged(&log);
    assert!(
        text.contains("New client connected from 198.51.100.9:51000 as v2-4"),
        "{text}"
    );
    assert!(
        text.contains("New client connected from [2001:db8::9]:5000 as v2-6"),
        "{text}"
    );
    assert!(
        text.contains("New client connected from 127.0.0.1:"),
        "{text}"
    );
}

#[tokio::test]
async fn a_header_in_pieces_is_read_exactly() {
    let served = Served::one(Config::default(), proxied(ProxyProtocol::V1)).await;
    let mut stream = TcpStream::connect(served.addr()).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut bytes = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n".to_vec();
    bytes.extend_from_slice(&connect_bytes(ProtocolVersion::V5, "dribble"));
    for byte in bytes {
        stream.write_all(&[byte]).await.unwrap();
        tokio::task::yield_now().await;
    }
    let mut raw = Raw::new(stream, ProtocolVersion::V5);
    assert!(
        matches!(raw.recv().await, Packet::ConnAck(ack) if ack.reason_code == ReasonCode::SUCCESS)
    );
    served.stop().await;
}

#[tokio::test]
async fn no_header_or_a_bad_one_never_reaches_mqtt() {
    let served = Served::many(
        Config::default(),
        vec![proxied(ProxyProtocol::V1), proxied(ProxyProtocol::V2)],
    )
    .await;
    let (v1, v2) = (served.addrs[0], served.addrs[1]);
    // No header: the listener never guesses (proxy-protocol.txt §1).
    assert_eq!(through(v1, b"", "bare").await, None);
    for bad in [
        &b"PROXY TCP4 203.0.113.7 127.0.0.1 40000\r\n"[..],
        b"PROXY TCP4 203.0.113.777 127.0.0.1 40000 1883\r\n",
        b"PROXY  TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n",
    ] {
        assert_eq!(through(v1, bad, "bad").await, None, "{bad:?}");
    }
    // A CONNECT shorter than a v2 header's 16 bytes is refused at once, not
    // waited on until the connect timeout.
    let started = tokio::time::Instant::now();
    assert_eq!(through(v2, b"", "").await, None);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // A v1 header on a v2 listener; a v2 header with an unassigned command.
    assert_eq!(through(v2, b"PROXY UNKNOWN\r\n", "v1-on-v2").await, None);
    assert_eq!(through(v2, &v2_header(2, 0x00, &[]), "cmd").await, None);
    served.stop().await;
}

#[tokio::test]
async fn a_header_that_never_ends_is_closed_at_the_connect_timeout() {
    let config = Config {
        connect_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let served = Served::one(config, proxied(ProxyProtocol::V1)).await;
    let mut stream = TcpStream::connect(served.addr()).await.unwrap();
    stream.write_all(b"PROXY TCP4 203.0.113.7").await.unwrap();
    let started = tokio::time::Instant::now();
    let seen = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(seen.is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    served.stop().await;
}

#[tokio::test]
async fn proxy_header_then_tls() {
    let pki = Pki::new("proxy-tls");
    let settings = ListenerSettings {
        tls: Some(tls(&pki)),
        ..proxied(ProxyProtocol::V2)
    };
    let (log, _guard) = capture_log();
    let served = Served::one(Config::default(), settings).await;
    // The balancer passes TLS through: its header comes first, in clear.
    let mut tcp = TcpStream::connect(served.addr()).await.unwrap();
    let mut ipv4 = vec![192, 0, 2, 44, 127, 0, 0, 1];
    ipv4.extend_from_slice(&[0x9C, 0x40, 0x22, 0xB3]);
    tcp.write_all(&v2_header(1, 0x11, &ipv4)).await.unwrap();
    let context =
        starling_transport::tls::ClientTls::new(&starling_transport::tls::ClientSettings {
            cafile: Some(pki.ca()),
            ..Default::default()
        })
        .unwrap();
    let stream = context
        .connect("localhost", tcp)
        .await
        .expect("TLS after the PROXY header");
    let mut raw = Raw::new(stream, ProtocolVersion::V3_1_1);
    assert_eq!(
        raw.connect("behind-lb").await.unwrap().reason_code,
        ReasonCode::SUCCESS
    );
    served.stop().await;
    let text = logged(&log);
    assert!(
        text.contains("New client connected from 192.0.2.44:40000 as behind-lb"),
        "{text}"
    );
}
