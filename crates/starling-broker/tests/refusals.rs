//! Every refusal reaches its client (issue 17): when the broker ends a
//! connection with a reason (a CONNACK refusal, DISCONNECT 0x93 Receive
//! Maximum exceeded, 0x95 Packet too large, 0x8E Session taken over, 0x8B
//! Server shutting down), a client that is still sending reads that reason.
//! Closing the socket with the client's later packets unread makes the
//! kernel answer them with a reset, which destroys the unread reason; the
//! broker shuts its write side and reads and drops what still comes, for a
//! bounded time, before it closes (a lingering close).
//!
//! Each test is the shape of Paho's `test_flow_control2`: the client writes
//! without pause from a task of its own while it reads, over real TCP.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use starling_broker::connection::LINGER;
use starling_broker::Config;
use starling_proto::{Decoder, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Role, TopicName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A client that writes without reading, as Paho's `test_flow_control2`
/// does, then reads what the broker said.
struct Stubborn {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    version: ProtocolVersion,
}

fn encode(packets: &[Packet], version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for packet in packets {
        packet.encode(version, &mut buf).unwrap();
    }
    buf.to_vec()
}

impl Stubborn {
    /// Connects and writes `first`.
    async fn start(broker: &TestBroker, version: ProtocolVersion, first: &[Packet]) -> Stubborn {
        let mut stream = TcpStream::connect(broker.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        stream.write_all(&encode(first, version)).await.unwrap();
        Stubborn {
            stream,
            decoder: Decoder::new(Role::Client, version),
            buf: BytesMut::new(),
            version,
        }
    }

    /// Writes a QoS 0 PUBLISH every 5 ms for `time`, reading nothing. Each
    /// write must succeed: once the broker has closed the socket, the
    /// kernel answers the next write with a reset and the one after fails
    /// (EPIPE), before the client ever reads why it was refused.
    async fn keep_sending(&mut self, time: Duration) {
        let publish = Packet::Publish(Publish::new(
            TopicName::try_from("flood").unwrap(),
            vec![b'x'; 100],
        ));
        let bytes = encode(&[publish], self.version);
        let until = tokio::time::Instant::now() + time;
        let mut writes = 0;
        while tokio::time::Instant::now() < until {
            if let Err(e) = self.stream.write_all(&bytes).await {
                panic!(
                    "write {writes} failed ({e}): the broker closed the socket while the \
                     client was still sending, before it read the reason"
                );
            }
            writes += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reads packets until `wanted` says one is the one awaited; panics if
    /// the connection ends first, naming how (a reset destroyed it).
    async fn read_until(&mut self, what: &str, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let found = tokio::time::timeout(WAIT, async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                    if wanted(&packet) {
                        return packet;
                    }
                    continue;
                }
                self.buf.reserve(64 * 1024);
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) => panic!("the connection ended before {what} was read"),
                    Err(e) => panic!("{e} before {what} was read: the reason was lost"),
                    Ok(_) => {}
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    /// After the final packet, the broker's side ends (it shut its write
    /// side: the end of the stream comes at once).
    async fn ends(mut self) {
        let mut sink = vec![0u8; 64 * 1024];
        let ended = tokio::time::timeout(WAIT, async {
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(ended.is_ok(), "the broker kept the connection open");
    }
}

fn disconnect_with(reason: ReasonCode) -> impl Fn(&Packet) -> bool {
    move |packet| match packet {
        Packet::Disconnect(d) => {
            assert_eq!(d.reason_code, reason, "the DISCONNECT's reason");
            true
        }
        _ => false,
    }
}

fn connack(packet: &Packet) -> bool {
    matches!(packet, Packet::ConnAck(_))
}

fn config() -> Config {
    Config {
        sys_interval: None,
        ..Config::default()
    }
}

// MQTT 5.0 §3.2.2.2: CONNACK 0x87 Not authorized; 3.1.1 return code 5.
#[tokio::test]
async fn a_connack_refusal_is_read_by_a_client_that_keeps_sending() {
    let broker = TestBroker::with_config(Config {
        allow_anonymous: false,
        ..config()
    })
    .await;
    for (version, code) in [
        (ProtocolVersion::V5, ReasonCode::NOT_AUTHORIZED),
        // 3.1.1 return code 5, which the codec reads as 0x87.
        (ProtocolVersion::V3_1_1, ReasonCode::NOT_AUTHORIZED),
    ] {
        let connect = Packet::Connect(Box::new(common::connect(version, "refused")));
        let mut client = Stubborn::start(&broker, version, &[connect]).await;
        client.keep_sending(Duration::from_millis(300)).await;
        match client.read_until("the CONNACK", connack).await {
            Packet::ConnAck(ack) => assert_eq!(ack.reason_code, code, "{version:?}"),
            _ => unreachable!(),
        }
        client.ends().await;
    }
    broker.stop().await;
}

// [MQTT-3.3.4-9]: more QoS 2 PUBLISHes unacknowledged than the server's
// Receive Maximum: DISCONNECT 0x93 (MQTT 5.0 §3.3.4). Paho's
// `test_flow_control2`.
#[tokio::test]
async fn receive_maximum_exceeded_0x93_is_read_by_a_client_that_keeps_sending() {
    let broker = TestBroker::with_config(Config {
        max_inflight_messages: 20,
        ..config()
    })
    .await;
    let version = ProtocolVersion::V5;
    let mut first = vec![Packet::Connect(Box::new(common::connect(version, "fc2")))];
    for id in 1..=21 {
        first.push(Packet::Publish(publish("fc", "m", QoS::ExactlyOnce, id)));
    }
    let mut client = Stubborn::start(&broker, version, &first).await;
    client.keep_sending(Duration::from_millis(300)).await;
    client
        .read_until(
            "DISCONNECT 0x93",
            disconnect_with(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        )
        .await;
    client.ends().await;
    broker.stop().await;
}

// [MQTT-3.2.2-15]: a packet over the server's Maximum Packet Size:
// DISCONNECT 0x95 (MQTT 5.0 §4.13).
#[tokio::test]
async fn packet_too_large_0x95_is_read_by_a_client_that_keeps_sending() {
    let broker = TestBroker::with_config(Config {
        max_packet_size: std::num::NonZeroU32::new(4096),
        ..config()
    })
    .await;
    let version = ProtocolVersion::V5;
    let big = Packet::Publish(Publish::new(topic("big"), vec![b'x'; 8192]));
    let first = vec![
        Packet::Connect(Box::new(common::connect(version, "big"))),
        big,
    ];
    let mut client = Stubborn::start(&broker, version, &first).await;
    client.keep_sending(Duration::from_millis(300)).await;
    client
        .read_until(
            "DISCONNECT 0x95",
            disconnect_with(ReasonCode::PACKET_TOO_LARGE),
        )
        .await;
    client.ends().await;
    broker.stop().await;
}

// [MQTT-3.1.4-3]: a second connection of the same client takes the session
// over; the first gets DISCONNECT 0x8E (MQTT 5.0 §3.14.2.1).
#[tokio::test]
async fn session_taken_over_0x8e_is_read_by_a_client_that_keeps_sending() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let connect = Packet::Connect(Box::new(common::connect(version, "twice")));
    let mut first = Stubborn::start(&broker, version, &[connect]).await;
    first.read_until("the CONNACK", connack).await;
    let addr = broker.addr;
    let takeover = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut second = RawClient::connect(addr, version).await;
        let ack = second.handshake(common::connect(version, "twice")).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        second
    });
    first.keep_sending(Duration::from_millis(300)).await;
    let _second = takeover.await.unwrap();
    first
        .read_until(
            "DISCONNECT 0x8E",
            disconnect_with(ReasonCode::SESSION_TAKEN_OVER),
        )
        .await;
    first.ends().await;
    broker.stop().await;
}

// MQTT 5.0 §3.14.2.1: DISCONNECT 0x8B Server shutting down.
#[tokio::test]
async fn server_shutting_down_0x8b_is_read_by_a_client_that_keeps_sending() {
    let broker = TestBroker::start().await;
    let version = ProtocolVersion::V5;
    let connect = Packet::Connect(Box::new(common::connect(version, "until-the-end")));
    let mut client = Stubborn::start(&broker, version, &[connect]).await;
    client.read_until("the CONNACK", connack).await;
    let stopping = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        broker.stop().await;
    });
    // Within the shorter linger of a shutdown (LINGER_AT_SHUTDOWN).
    client.keep_sending(Duration::from_millis(60)).await;
    client
        .read_until(
            "DISCONNECT 0x8B",
            disconnect_with(ReasonCode::SERVER_SHUTTING_DOWN),
        )
        .await;
    client.ends().await;
    stopping.await.unwrap();
}

/// A client that trickles bytes cannot hold a refused connection open: the
/// linger is bounded.
#[tokio::test]
async fn a_trickling_client_cannot_hold_a_refused_connection_open() {
    let broker = TestBroker::with_config(Config {
        allow_anonymous: false,
        ..config()
    })
    .await;
    let version = ProtocolVersion::V3_1_1;
    let mut stream = TcpStream::connect(broker.addr).await.unwrap();
    stream
        .write_all(&encode(
            &[Packet::Connect(Box::new(common::connect(version, "slow")))],
            version,
        ))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let mut got_eof = false;
    // One byte every 100 ms; the broker closes within its linger.
    while started.elapsed() < LINGER + WAIT {
        if stream.write_all(&[0xC0]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) => got_eof = true,
            Ok(Err(_)) => break,
            _ => {}
        }
    }
    assert!(got_eof, "the CONNACK and the end of the stream came");
    assert!(
        started.elapsed() < LINGER + Duration::from_secs(1),
        "the refused connection stayed open {:?}",
        started.elapsed()
    );
    broker.stop().await;
}
