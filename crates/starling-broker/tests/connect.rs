//! CONNECT and CONNACK over real sockets: acceptance, client identifiers,
//! refusals in each version's form, what the broker does with a first packet
//! that is not CONNECT, a second CONNECT or a malformed packet, session
//! takeover, and graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use starling_broker::connection::CONNECT_TIMEOUT;
use starling_broker::stats::Stats;
use starling_broker::Config;
use starling_proto::{Connect, Decoder, Packet, ProtocolVersion, QoS, ReasonCode, Role};

/// Connects with `connect`, asserts a refusal with `reason` (3.x: the return
/// code it maps to) and Session Present 0, then that the socket is closed.
async fn expect_refused(broker: &TestBroker, connect: Connect, reason: ReasonCode, code: u8) {
    let version = connect.protocol;
    let (mut client, ack) = connect_with(broker, connect).await;
    assert_eq!(ack.reason_code, reason, "{version}");
    if !version.is_v5() {
        assert_eq!(ack.reason_code.to_connect_return_code(), code, "{version}");
    }
    // [MQTT-3.2.2-6]: Session Present 0 on a refusal.
    assert!(!ack.session_present, "{version}");
    // [MQTT-3.2.2-7]: the connection is closed after a refusing CONNACK.
    let after = client.expect_closed().await;
    assert!(
        after.is_empty(),
        "{version}: packets after a refusal: {after:?}"
    );
}

fn anonymous_forbidden() -> Config {
    Config {
        sys_interval: None,
        allow_anonymous: false,
        ..Config::default()
    }
}

#[tokio::test]
async fn connect_is_acknowledged_with_success_in_every_version() {
    // [MQTT-3.1.4-5]: a valid CONNECT gets CONNACK 0x00; [MQTT-3.2.2-2]: with a
    // clean start, Session Present 0; [MQTT-3.12.4-1]: the connection works.
    let broker = TestBroker::start().await;
    for version in ProtocolVersion::ALL {
        let (mut client, ack) = accepted(&broker, connect(version, "hello")).await;
        assert!(!ack.session_present, "{version}");
        assert_eq!(
            ack.properties.assigned_client_identifier, None,
            "{version}: no Assigned Client Identifier for a client that named itself"
        );
        sync(&mut client).await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v5_empty_client_id_gets_a_unique_assigned_identifier() {
    // [MQTT-3.1.3-6], [MQTT-3.1.3-7], [MQTT-3.2.2-16]
    let broker = TestBroker::start().await;
    let (mut first, ack1) = accepted(&broker, connect(V5, "")).await;
    let (mut second, ack2) = accepted(&broker, connect(V5, "")).await;
    let id1 = ack1
        .properties
        .assigned_client_identifier
        .clone()
        .expect("assigned id");
    let id2 = ack2
        .properties
        .assigned_client_identifier
        .clone()
        .expect("assigned id");
    assert!(!id1.is_empty());
    assert_ne!(id1, id2, "[MQTT-3.2.2-16] a new identifier for each client");
    // Both are live, separate sessions: neither took the other over.
    sync(&mut first).await;
    sync(&mut second).await;
    assert_eq!(broker.broker.session_count(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn v311_empty_client_id_needs_clean_session() {
    let broker = TestBroker::start().await;
    // [MQTT-3.1.3-8] (3.1.1): an empty ClientId with CleanSession 0 is refused
    // with return code 0x02 (Identifier rejected) and the connection closed.
    expect_refused(
        &broker,
        persistent(V3_1_1, "", 0),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        2,
    )
    .await;
    // [MQTT-3.1.3-6]: with CleanSession 1 the broker assigns an identifier
    // (3.1.1 has no way to tell the client which).
    let (mut client, ack) = accepted(&broker, connect(V3_1_1, "")).await;
    assert!(!ack.session_present);
    sync(&mut client).await;
    broker.stop().await;
}

#[tokio::test]
async fn v31_empty_client_id_is_refused() {
    // MQTT 3.1 §3.1 (no statement ids): the Client Identifier is 1 to 23
    // characters; return code 2 (Identifier rejected) otherwise. Clean session
    // does not help.
    let broker = TestBroker::start().await;
    for clean in [true, false] {
        let mut c = connect(V3_1, "");
        c.clean_start = clean;
        expect_refused(&broker, c, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 2).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn empty_client_id_is_refused_when_not_allowed() {
    // allow_zero_length_clientid false: 3.1.1 [MQTT-3.1.3-9] (3.1.1) return
    // code 0x02; 5.0 [MQTT-3.1.3-8] CONNACK 0x85 and close.
    let broker = TestBroker::with_config(Config {
        sys_interval: None,
        allow_zero_length_clientid: false,
        ..Config::default()
    })
    .await;
    expect_refused(
        &broker,
        connect(V3_1_1, ""),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        2,
    )
    .await;
    expect_refused(
        &broker,
        connect(V5, ""),
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        2,
    )
    .await;
    // Named clients are unaffected.
    accepted(&broker, connect(V5, "named")).await;
    broker.stop().await;
}

#[tokio::test]
async fn anonymous_clients_are_refused_when_not_allowed() {
    // [MQTT-3.1.4-2]: a failed authorisation check closes the connection, here
    // after CONNACK 0x87 (v5) or return code 5, Not authorized (3.x).
    let broker = TestBroker::with_config(anonymous_forbidden()).await;
    for version in ProtocolVersion::ALL {
        expect_refused(
            &broker,
            connect(version, "anon"),
            ReasonCode::NOT_AUTHORIZED,
            5,
        )
        .await;
    }
    assert_eq!(
        broker.broker.session_count(),
        0,
        "no session for a refused client"
    );
    broker.stop().await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_connack_0x01_then_close() {
    // [MQTT-3.1.2-2] (3.1.1): CONNACK return code 0x01 (unacceptable protocol
    // level) in the 3.1.1 form, then the connection is closed.
    let broker = TestBroker::start().await;
    let mut client = broker.client(V3_1_1).await;
    #[rustfmt::skip]
    let connect_level_6 = [
        0x10, 13,
        0x00, 0x04, b'M', b'Q', b'T', b'T',
        6,          // protocol level
        0x02,       // clean start
        0x00, 0x3C, // keep alive
        0x00, 0x01, b'x',
    ];
    client.send_bytes(&connect_level_6).await;
    let bytes = read_until_closed(&mut client.stream, WAIT).await;
    assert_eq!(bytes, [0x20, 0x02, 0x00, 0x01]);
    broker.stop().await;
}

#[tokio::test]
async fn invalid_connect_closes_without_connack() {
    // [MQTT-3.1.4-1]: a CONNECT that does not match §3.1 closes the connection
    // (v5 MAY send a CONNACK first; the broker, like 3.x, sends nothing).
    let broker = TestBroker::start().await;
    #[rustfmt::skip]
    let cases: [(&str, [u8; 15]); 2] = [
        // [MQTT-3.1.2-3]: the reserved flag is set.
        ("reserved flag", [0x10, 13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0x03, 0x00, 0x3C, 0x00, 0x01, b'x']),
        // [MQTT-3.1.2-11]: Will QoS without the Will Flag.
        ("will QoS without will", [0x10, 13, 0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0x0A, 0x00, 0x3C, 0x00, 0x01, b'x']),
    ];
    for (what, bytes) in cases {
        let mut client = broker.client(V3_1_1).await;
        client.send_bytes(&bytes).await;
        let answer = read_until_closed(&mut client.stream, WAIT).await;
        assert!(answer.is_empty(), "{what}: got {answer:02x?}");
    }
    assert_eq!(broker.broker.session_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn nothing_after_a_refused_connect_is_processed() {
    // [MQTT-3.1.4-6]: a retained PUBLISH sent right behind a refused CONNECT
    // is not acted on.
    let broker = TestBroker::with_config(anonymous_forbidden()).await;
    for version in [V3_1_1, V5] {
        let mut bytes = BytesMut::new();
        Packet::Connect(Box::new(connect(version, "eager")))
            .encode(version, &mut bytes)
            .unwrap();
        let mut sneaky = publish("sneaky/topic", "should not be kept", QoS::AtMostOnce, 0);
        sneaky.retain = true;
        Packet::Publish(sneaky).encode(version, &mut bytes).unwrap();
        let mut client = broker.client(version).await;
        client.send_bytes(&bytes).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        assert!(client.expect_closed().await.is_empty());
    }
    assert_eq!(broker.broker.retained_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn first_packet_other_than_connect_closes_the_connection() {
    // [MQTT-3.1.0-1]: the first packet must be CONNECT; the broker closes the
    // connection without a CONNACK.
    let broker = TestBroker::start().await;
    let pingreq = [0xC0, 0x00];
    let publish = [0x30, 0x04, 0x00, 0x01, b'a', b'x'];
    let subscribe = [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00];
    for first in [&pingreq[..], &publish[..], &subscribe[..]] {
        let mut client = broker.client(V3_1_1).await;
        client.send_bytes(first).await;
        let bytes = read_until_closed(&mut client.stream, WAIT).await;
        assert!(bytes.is_empty(), "sent {first:02x?}, got {bytes:02x?}");
    }
    assert_eq!(broker.broker.session_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    // [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error and closes the
    // connection; a v5 client is told with DISCONNECT 0x82.
    let broker = TestBroker::start().await;
    for version in ProtocolVersion::ALL {
        let (mut client, _) = accepted(&broker, connect(version, "twice")).await;
        client
            .send(Packet::Connect(Box::new(connect(version, "twice"))))
            .await;
        expect_disconnect(&mut client, ReasonCode::PROTOCOL_ERROR).await;
    }
    broker.stop().await;
}

/// A PUBLISH written byte by byte: `flags` in the fixed header, `id` if any,
/// and an empty property block for v5.
fn raw_publish(flags: u8, name: &str, id: Option<u16>, v5: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name.as_bytes());
    if let Some(id) = id {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if v5 {
        body.push(0x00);
    }
    body.push(b'x');
    let mut packet = vec![0x30 | flags, body.len() as u8];
    packet.extend(body);
    packet
}

/// The v5 reason code the codec gives for `bytes` read by a server.
fn codec_reason(bytes: &[u8]) -> ReasonCode {
    let mut decoder = Decoder::new(Role::Server, V5);
    match decoder.decode(&mut BytesMut::from(bytes)) {
        Err(e) => e.reason_code(),
        Ok(packet) => panic!("{bytes:02x?} decodes as {packet:?}"),
    }
}

#[tokio::test]
async fn malformed_packet_closes_the_connection_with_the_codec_reason() {
    // [MQTT-4.13.1-1]: a Malformed Packet or Protocol Error closes the
    // connection; a v5 client first gets DISCONNECT with the reason code the
    // codec names for the error [MQTT-4.13.2-1]. Other clients are unaffected.
    let broker = TestBroker::start().await;
    let mut bystander = watcher(&broker, "bystander", "ok/#").await;
    #[rustfmt::skip]
    let cases: [(&str, Vec<u8>, ReasonCode); 4] = [
        // [MQTT-3.3.1-4]: both QoS bits set.
        ("PUBLISH with QoS 3", raw_publish(0x06, "a/b", Some(1), true), ReasonCode::MALFORMED_PACKET),
        // [MQTT-3.3.2-2]: a wildcard in a topic name.
        ("PUBLISH to a/#", raw_publish(0x00, "a/#", None, true), ReasonCode::TOPIC_NAME_INVALID),
        // [MQTT-2.2.1-3]: packet identifier 0.
        ("PUBLISH with packet id 0", raw_publish(0x02, "a", Some(0), true), ReasonCode::PROTOCOL_ERROR),
        // [MQTT-3.8.1-1]: SUBSCRIBE flags must be 0b0010.
        ("SUBSCRIBE with flags 0", vec![0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x01], ReasonCode::MALFORMED_PACKET),
    ];
    for (what, bytes, expected) in cases {
        let reason = codec_reason(&bytes);
        assert_eq!(reason, expected, "{what}: the codec's reason");
        let (mut client, _) = accepted(&broker, connect(V5, "bad")).await;
        client.send_bytes(&bytes).await;
        expect_disconnect(&mut client, reason).await;
    }
    // 3.x clients are closed without a word.
    for version in [V3_1, V3_1_1] {
        let (mut client, _) = accepted(&broker, connect(version, "bad")).await;
        client
            .send_bytes(&raw_publish(0x06, "a/b", Some(1), false))
            .await;
        expect_disconnect(&mut client, ReasonCode::MALFORMED_PACKET).await;
    }
    // The broker keeps serving everyone else.
    let (mut publisher, _) = accepted(&broker, connect(V3_1_1, "good")).await;
    send_message(&mut publisher, "ok/1", "still here", QoS::AtLeastOnce, 1).await;
    expect_payload(&mut bystander, "still here").await;
    broker.stop().await;
}

#[tokio::test]
async fn no_connect_within_the_timeout_closes_the_socket() {
    // MQTT 5.0 §3.1.4 (no statement id): a server SHOULD close a connection
    // that sends no CONNECT within a reasonable time; ours is CONNECT_TIMEOUT.
    assert_eq!(
        CONNECT_TIMEOUT,
        Duration::from_secs(10),
        "this test's budget"
    );
    let broker = TestBroker::start().await;
    let mut silent = broker.client(V3_1_1).await;
    let start = Instant::now();
    let bytes =
        read_until_closed(&mut silent.stream, CONNECT_TIMEOUT + Duration::from_secs(2)).await;
    let elapsed = start.elapsed();
    assert!(bytes.is_empty(), "got {bytes:02x?}");
    assert!(
        elapsed >= CONNECT_TIMEOUT - Duration::from_millis(500),
        "closed after {elapsed:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn same_client_id_takes_over_the_connection_and_publishes_its_will() {
    // [MQTT-3.1.4-3]: a second connection with the same ClientID closes the
    // first, v5 with DISCONNECT 0x8E (Session taken over). The first
    // connection's will (no delay, session ending) is published [MQTT-3.1.2-8].
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "wills", "takeover/#").await;
    for version in ProtocolVersion::ALL {
        let name = format!("takeover/{version}");
        let mut c = connect(version, "twin");
        c.will = Some(will(&name, "first is gone", QoS::AtLeastOnce, false));
        let (mut first, _) = accepted(&broker, c).await;
        let (mut second, ack) = accepted(&broker, connect(version, "twin")).await;
        assert!(!ack.session_present, "{version}: clean start");
        expect_disconnect(&mut first, ReasonCode::SESSION_TAKEN_OVER).await;
        let got = receive(&mut wills).await;
        assert_eq!(got.topic.as_str(), name);
        assert_eq!(text(&got), "first is gone");
        // The new connection is the one that works.
        sync(&mut second).await;
        disconnect(second).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn stop_disconnects_v5_clients_with_0x8b_and_closes_3x_clients() {
    // MQTT 5.0 §3.14.2.1: 0x8B Server shutting down; [MQTT-4.13.2-1]: the
    // connection is closed after it. 3.x clients are closed without a word.
    let broker = TestBroker::start().await;
    let addr = broker.addr;
    let mut clients = Vec::new();
    for version in ProtocolVersion::ALL {
        let (client, _) = accepted(&broker, connect(version, &format!("c{version}"))).await;
        clients.push(client);
    }
    let stopping = tokio::spawn(broker.stop());
    for client in &mut clients {
        expect_disconnect(client, ReasonCode::SERVER_SHUTTING_DOWN).await;
    }
    stopping.await.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn takeover_and_stop_reach_a_connection_that_messages_keep_waking() {
    // A takeover, a shutdown and a message all come to a connection as one
    // wake-up of its session, with the reason in a flag: none may be lost
    // among the others.
    let broker = TestBroker::start().await;
    let (mut publisher, _) = accepted(&broker, connect(V5, "busy-publisher")).await;
    async fn flood(publisher: &mut RawClient) {
        for _ in 0..500 {
            let packet = Packet::Publish(publish("busy/t", "m", QoS::AtMostOnce, 0));
            publisher.send(packet).await;
        }
    }
    let (mut first, _) = accepted(&broker, connect(V5, "busy")).await;
    first.subscribe(1, "busy/t", QoS::AtMostOnce).await;
    flood(&mut publisher).await;
    let started = Instant::now();
    let (mut second, _) = accepted(&broker, connect(V5, "busy")).await;
    // The takeover waits for the old connection to finish (up to 5 s if it
    // never does): it is told when it has.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "takeover took {:?}",
        started.elapsed()
    );
    assert_eq!(
        disconnect_reason(&mut first).await,
        Some(ReasonCode::SESSION_TAKEN_OVER)
    );
    second.subscribe(1, "busy/t", QoS::AtMostOnce).await;
    flood(&mut publisher).await;
    let stopping = tokio::spawn(broker.stop());
    assert_eq!(
        disconnect_reason(&mut second).await,
        Some(ReasonCode::SERVER_SHUTTING_DOWN)
    );
    stopping.await.unwrap();
}

/// A v5 client subscribed to `flood` that never reads again, and 16 MB of
/// messages queued for it: more than the socket buffers hold, so the broker's
/// write to it cannot complete.
async fn stuck_reader(broker: &TestBroker, id: &str) -> RawClient {
    let (mut stuck, _) = accepted(broker, connect(V5, id)).await;
    stuck.subscribe(1, "flood", QoS::AtMostOnce).await;
    let (mut publisher, _) = accepted(broker, connect(V5, "flooder")).await;
    let payload = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    for _ in 0..16 {
        let mut p = publish("flood", "", QoS::AtMostOnce, 0);
        p.payload = payload.clone();
        publisher.send(Packet::Publish(p)).await;
    }
    sync(&mut publisher).await;
    disconnect(publisher).await;
    stuck
}

#[tokio::test]
async fn takeover_closes_a_connection_blocked_writing_to_its_client() {
    // [MQTT-3.1.4-3]: the existing connection is closed even while the broker
    // is blocked writing to a client that stopped reading.
    let broker = TestBroker::start().await;
    let _stuck = stuck_reader(&broker, "stuck").await;
    let (mut twin, _) = accepted(&broker, connect(V5, "stuck")).await;
    eventually(|| Stats::get(&broker.broker.stats.clients_connected) == 1).await;
    sync(&mut twin).await;
    broker.stop().await;
}

#[tokio::test]
async fn stop_closes_a_connection_blocked_writing_to_its_client() {
    // [MQTT-4.13.2-1]: shutting down closes every connection, including one
    // whose client stopped reading (it cannot be sent a DISCONNECT).
    let broker = TestBroker::start().await;
    let _stuck = stuck_reader(&broker, "stuck").await;
    broker.stop().await;
}

/// [MQTT-4.12.0-1]: a CONNECT with an Authentication Method the server does
/// not support gets CONNACK 0x8C Bad authentication method, and the
/// connection is closed (Mosquitto without an authentication plugin does
/// the same).
#[tokio::test]
async fn an_unsupported_authentication_method_is_refused() {
    let broker = TestBroker::start().await;
    let mut c = connect(ProtocolVersion::V5, "scram-client");
    c.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    expect_refused(&broker, c, ReasonCode::BAD_AUTHENTICATION_METHOD, 0).await;
    broker.stop().await;
}

/// As Mosquitto: a will whose payload is larger than message_size_limit
/// refuses the CONNECT: v5 with 0x95 Packet too large, 3.x (which has no
/// code for it) by closing the connection without a CONNACK.
#[tokio::test]
async fn a_will_larger_than_message_size_limit_refuses_the_connect() {
    let broker = TestBroker::with_config(Config {
        sys_interval: None,
        message_size_limit: std::num::NonZeroU32::new(10),
        ..Config::default()
    })
    .await;
    let with_will = |version, payload: &'static [u8]| {
        let mut c = connect(version, "big-will");
        c.will = Some(starling_proto::Will {
            topic: topic("wills/big"),
            payload: bytes::Bytes::from_static(payload),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Default::default(),
        });
        c
    };
    expect_refused(
        &broker,
        with_will(ProtocolVersion::V5, b"eleven byte"),
        ReasonCode::PACKET_TOO_LARGE,
        0,
    )
    .await;
    let mut client = broker.client(ProtocolVersion::V3_1_1).await;
    client
        .send(Packet::Connect(Box::new(with_will(
            ProtocolVersion::V3_1_1,
            b"eleven byte",
        ))))
        .await;
    assert!(client.expect_closed().await.is_empty(), "no CONNACK");
    // At the limit it is accepted.
    let (client, _) = accepted(&broker, with_will(ProtocolVersion::V5, b"ten bytes!")).await;
    disconnect(client).await;
    broker.stop().await;
}

/// MQTT 3.1's CONNACK has no Session Present flag (its first byte is
/// reserved): a 3.1 client resuming its session gets `20 02 00 00`, as
/// Mosquitto sends, where 3.1.1 gets `20 02 01 00` [MQTT-3.2.2-2].
#[tokio::test]
async fn a_resumed_mqtt_3_1_session_gets_a_reserved_zero_first_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let broker = TestBroker::start().await;
    for (version, expected) in [
        (ProtocolVersion::V3_1, [0x20, 0x02, 0x00, 0x00]),
        (ProtocolVersion::V3_1_1, [0x20, 0x02, 0x01, 0x00]),
    ] {
        let mut c = connect(version, &format!("resumed-{version}"));
        c.clean_start = false;
        let (client, _) = accepted(&broker, c.clone()).await;
        disconnect(client).await;
        let mut tcp = tokio::net::TcpStream::connect(broker.addr).await.unwrap();
        let mut buf = BytesMut::new();
        Packet::Connect(Box::new(c))
            .encode(version, &mut buf)
            .unwrap();
        tcp.write_all(&buf).await.unwrap();
        let mut ack = [0u8; 4];
        tokio::time::timeout(WAIT, tcp.read_exact(&mut ack))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ack, expected, "{version}");
    }
    broker.stop().await;
}

/// [MQTT-3.1.2-24]: the server sends nothing larger than the client's
/// Maximum Packet Size, CONNACK included: what may go is left out until it
/// fits (here the Response Information the client asked for).
#[tokio::test]
async fn the_connack_fits_the_clients_maximum_packet_size() {
    let broker = TestBroker::start().await;
    let asking = |id: &str, max: u32| {
        let mut c = connect(ProtocolVersion::V5, id);
        c.properties.request_response_information = Some(true);
        c.properties.maximum_packet_size = std::num::NonZeroU32::new(max);
        c
    };
    let (client, ack) = accepted(&broker, asking("roomy-client", 1024)).await;
    assert!(ack.properties.response_information.is_some());
    disconnect(client).await;
    let (client, ack) = accepted(&broker, asking("small-client", 16)).await;
    assert!(ack.properties.response_information.is_none());
    let size = Packet::ConnAck(ack).encoded_len(ProtocolVersion::V5);
    assert!(size <= 16, "CONNACK of {size} bytes");
    disconnect(client).await;
    broker.stop().await;
}
