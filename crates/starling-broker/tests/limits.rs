//! Limits: `max_connections` (broker-wide and per listener),
//! `connect_timeout` (a connection that sends no CONNECT is closed) and
//! `max_publish_rate` (v5: DISCONNECT 0x96; 3.x: read more slowly).

mod common;

use std::num::NonZeroU32;
use std::time::Duration;

use common::*;
use starling_broker::config::ListenerSettings;
use starling_broker::Config;
use starling_proto::{ProtocolVersion, QoS, ReasonCode};

#[tokio::test]
async fn max_connections_refuses_the_connection_over_the_limit_and_frees_its_slot() {
    let config = Config {
        max_connections: Some(1),
        sys_interval: None,
        ..Config::default()
    };
    let broker = TestBroker::with_config(config).await;
    let mut first = broker.client(ProtocolVersion::V3_1_1).await;
    assert_eq!(
        first
            .handshake(connect(ProtocolVersion::V3_1_1, "one"))
            .await
            .reason_code,
        ReasonCode::SUCCESS
    );

    // The second socket is closed before any CONNACK, as Mosquitto does.
    let mut second = broker.client(ProtocolVersion::V3_1_1).await;
    second
        .send(starling_proto::Packet::Connect(Box::new(connect(
            ProtocolVersion::V3_1_1,
            "two",
        ))))
        .await;
    assert!(second.expect_closed().await.is_empty());

    // Once the first leaves, its slot is free again (the slot is released just
    // after the session detaches, so a refused try is retried).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut third = broker.client(ProtocolVersion::V3_1_1).await;
        third
            .send(starling_proto::Packet::Connect(Box::new(connect(
                ProtocolVersion::V3_1_1,
                "three",
            ))))
            .await;
        match third.recv().await {
            Some(starling_proto::Packet::ConnAck(ack)) => {
                assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
                break;
            }
            None => assert!(
                tokio::time::Instant::now() < deadline,
                "the slot was never freed"
            ),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn connect_timeout_is_configurable() {
    let config = Config {
        connect_timeout: Duration::from_secs(1),
        sys_interval: None,
        ..Config::default()
    };
    let broker = TestBroker::with_config(config).await;
    let mut silent = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let seen = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    let elapsed = started.elapsed();
    assert!(
        seen.is_empty(),
        "nothing is sent to a client that never sent CONNECT"
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
    broker.stop().await;
}

/// Issue 17: half a CONNECT, then nothing, is closed at the same deadline as
/// no CONNECT at all; so is a CONNECT that claims a huge remaining length
/// (nothing of it is allocated before it arrives).
#[tokio::test]
async fn a_half_connect_or_a_huge_claimed_one_is_closed_at_connect_timeout() {
    let config = Config {
        connect_timeout: Duration::from_secs(1),
        sys_interval: None,
        ..Config::default()
    };
    let broker = TestBroker::with_config(config).await;
    let mut connect = bytes::BytesMut::new();
    starling_proto::Packet::Connect(Box::new(common::connect(ProtocolVersion::V5, "half")))
        .encode(ProtocolVersion::V5, &mut connect)
        .unwrap();
    let half = &connect[..connect.len() / 2];
    // A CONNECT header claiming 268,435,455 bytes (the most the remaining
    // length can say), then four of them.
    let claims = [0x10, 0xFF, 0xFF, 0xFF, 0x7F, 0, 4, b'M', b'Q'];
    for start in [half, &claims[..]] {
        let mut stalled = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stalled, start)
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let seen = read_until_closed(&mut stalled, Duration::from_secs(5)).await;
        let elapsed = started.elapsed();
        assert!(seen.is_empty(), "nothing is sent before a whole CONNECT");
        assert!(
            elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(4),
            "closed after {elapsed:?}"
        );
    }
    broker.stop().await;
}

/// Issue 17: after CONNECT, half a PUBLISH and then silence is closed by the
/// keep alive (one and a half times it [MQTT-3.1.2-24]), as silence is.
#[tokio::test]
async fn half_a_packet_then_silence_is_closed_by_the_keep_alive() {
    let broker = TestBroker::start().await;
    let mut client = broker.client(ProtocolVersion::V5).await;
    let mut login = common::connect(ProtocolVersion::V5, "half-packet");
    login.keep_alive = 1;
    client.handshake(login).await;
    let mut publish = bytes::BytesMut::new();
    starling_proto::Packet::Publish(common::publish("t", "payload", QoS::AtLeastOnce, 1))
        .encode(ProtocolVersion::V5, &mut publish)
        .unwrap();
    client.send_bytes(&publish[..publish.len() - 3]).await;
    let started = tokio::time::Instant::now();
    let seen = client.expect_closed().await;
    let elapsed = started.elapsed();
    assert!(
        matches!(&seen[..], [starling_proto::Packet::Disconnect(d)] if d.reason_code == ReasonCode::KEEP_ALIVE_TIMEOUT),
        "{seen:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1200) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn max_connections_per_listener() {
    let limited = ListenerSettings {
        max_connections: Some(1),
        ..Default::default()
    };
    let served = common::Served::many(Config::default(), vec![limited, Default::default()]).await;
    let (one, other) = (served.addrs[0], served.addrs[1]);
    let v = ProtocolVersion::V3_1_1;
    let mut first = common::Raw::new(tokio::net::TcpStream::connect(one).await.unwrap(), v);
    assert!(first.connect("first").await.is_ok());
    // The limited listener refuses a second connection, closing it at once...
    let mut second = common::Raw::new(tokio::net::TcpStream::connect(one).await.unwrap(), v);
    assert!(second.connect("second").await.is_err());
    // ...while the other listener is not limited.
    for n in 0..3 {
        let stream = tokio::net::TcpStream::connect(other).await.unwrap();
        let mut client = common::Raw::new(stream, v);
        assert!(client.connect(&format!("other-{n}")).await.is_ok());
    }
    served.stop().await;
}

#[tokio::test]
async fn a_listener_s_sockets_share_its_max_connections() {
    // One listener bound to two addresses, as `listener 1883` binds 0.0.0.0
    // and ::; here 127.0.0.1 and 127.0.0.2 on the same port.
    let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    let second = tokio::net::TcpListener::bind(("127.0.0.2", port))
        .await
        .unwrap();
    let settings = ListenerSettings {
        max_connections: Some(1),
        ..Default::default()
    };
    let endpoints = [first, second]
        .into_iter()
        .map(|socket| {
            let listener = starling_broker::config::Listener {
                settings: settings.clone(),
                ..starling_broker::config::Listener::new(socket.local_addr().unwrap())
            };
            starling_broker::transport::Endpoint::new(socket, listener).unwrap()
        })
        .collect();
    let served = common::Served::endpoints(Config::default(), endpoints).await;
    let v = ProtocolVersion::V3_1_1;
    let stream = tokio::net::TcpStream::connect(served.addrs[0])
        .await
        .unwrap();
    let mut one = common::Raw::new(stream, v);
    assert!(one.connect("one").await.is_ok());
    let stream = tokio::net::TcpStream::connect(served.addrs[1])
        .await
        .unwrap();
    let mut two = common::Raw::new(stream, v);
    assert!(
        two.connect("two").await.is_err(),
        "the limit is the listener's"
    );
    served.stop().await;
}

fn rate_limited(rate: u32) -> Config {
    Config {
        max_publish_rate: NonZeroU32::new(rate),
        sys_interval: None,
        ..Config::default()
    }
}

#[tokio::test]
async fn max_publish_rate_disconnects_a_v5_client_with_0x96() {
    let broker = TestBroker::with_config(rate_limited(5)).await;
    let v = ProtocolVersion::V5;
    let mut client = broker.client(v).await;
    assert_eq!(
        client.handshake(connect(v, "fast")).await.reason_code,
        ReasonCode::SUCCESS
    );
    // A burst of the rate passes; the next one is over it.
    let mut burst = bytes::BytesMut::new();
    for n in 0..20 {
        let p = publish("rate/x", "m", starling_proto::QoS::AtMostOnce, n + 1);
        starling_proto::Packet::Publish(p)
            .encode(v, &mut burst)
            .unwrap();
    }
    client.send_bytes(&burst).await;
    let seen = client.expect_closed().await;
    match seen.last() {
        Some(starling_proto::Packet::Disconnect(d)) => {
            assert_eq!(d.reason_code, ReasonCode::MESSAGE_RATE_TOO_HIGH)
        }
        other => panic!("expected DISCONNECT 0x96, got {other:?}"),
    }
    broker.stop().await;
}

#[tokio::test]
async fn max_publish_rate_slows_a_3_1_1_client_down_without_disconnecting_it() {
    let rate = 40;
    let broker = TestBroker::with_config(rate_limited(rate)).await;
    let v = ProtocolVersion::V3_1_1;
    let mut client = broker.client(v).await;
    assert_eq!(
        client.handshake(connect(v, "steady")).await.reason_code,
        ReasonCode::SUCCESS
    );
    // Twice the rate, all at once: the first second's worth is acknowledged at
    // once, the rest at the rate, by reading them no faster.
    let total = 2 * rate as u16;
    let mut burst = bytes::BytesMut::new();
    for n in 1..=total {
        let p = publish("rate/y", "m", starling_proto::QoS::AtLeastOnce, n);
        starling_proto::Packet::Publish(p)
            .encode(v, &mut burst)
            .unwrap();
    }
    let started = tokio::time::Instant::now();
    client.send_bytes(&burst).await;
    for n in 1..=total {
        match client.recv().await {
            Some(starling_proto::Packet::PubAck(ack)) => assert_eq!(ack.packet_id.get(), n),
            other => panic!("expected PUBACK {n}, got {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    // 40 more at 40 per second: about a second (the first token of the refill
    // comes after 1/40 s).
    assert!(
        elapsed >= Duration::from_millis(900),
        "acknowledged within {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    // Still connected.
    client.send(starling_proto::Packet::PingReq).await;
    assert_eq!(client.recv().await, Some(starling_proto::Packet::PingResp));
    broker.stop().await;
}
