//! Reliability over real sockets: the broker's Receive Maximum, reconnection
//! and resending across a connection cut mid-flow, the offline queue, keep
//! alive, and exactly-once delivery of incoming QoS 2.

mod common;

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use starling_broker::Config;
use starling_client::{
    Client, ClientOptions, ConnAck, Direction, Error, Event, Packet, PacketTrace, PacketType,
    ProtocolVersion, QoS, ReasonCode, ReconnectPolicy,
};
use starling_proto::{Delivery, PubAck, PubComp, PubRec, PubRel, Publish, TopicName};

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy::Backoff {
        min: Duration::from_millis(10),
        max: Duration::from_millis(100),
    }
}

/// [MQTT-4.9.0-2]: a fake broker grants Receive Maximum 2 and checks that the
/// client never has more than 2 QoS 1 and 2 PUBLISHes unacknowledged.
#[tokio::test]
async fn receive_maximum_is_never_exceeded() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url())
        .unwrap()
        .version(ProtocolVersion::V5)
        .client_id("windowed");
    let connect = tokio::spawn(Client::connect(options));
    let (mut conn, _) = fake.accept().await;
    let mut connack = ConnAck::default();
    connack.properties.receive_maximum = NonZeroU16::new(2);
    conn.send(Packet::ConnAck(connack)).await;
    let (client, _events) = connect.await.unwrap().unwrap();

    const COUNT: usize = 10;
    let mut publishes = tokio::task::JoinSet::new();
    for i in 0..COUNT {
        let client = client.clone();
        let qos = if i % 2 == 0 {
            QoS::AtLeastOnce
        } else {
            QoS::ExactlyOnce
        };
        publishes.spawn(async move { client.publish("w", format!("{i}"), qos, false).await });
    }

    // Outstanding: PUBLISH received, PUBACK or PUBCOMP not yet sent. While
    // the window has room the client must fill it; once it is full, nothing
    // may come until the fake broker acknowledges the oldest.
    let mut outstanding: Vec<Publish> = Vec::new();
    let mut received = 0;
    let mut max_seen = 0;
    while received < COUNT || !outstanding.is_empty() {
        if outstanding.len() < 2 && received < COUNT {
            let Some(Packet::Publish(publish)) = conn.recv().await else {
                panic!("expected PUBLISH while the window has room");
            };
            received += 1;
            outstanding.push(publish);
            max_seen = max_seen.max(outstanding.len());
            continue;
        }
        if received < COUNT {
            let early = conn.recv_within(Duration::from_millis(150)).await;
            assert!(
                early.is_none(),
                "client exceeded Receive Maximum 2: {early:?}"
            );
        }
        match outstanding.remove(0).delivery {
            Delivery::AtLeastOnce(id) => conn.send(Packet::PubAck(PubAck::new(id))).await,
            Delivery::ExactlyOnce(id) => {
                // The slot stays taken after PUBREC, until PUBCOMP: the next
                // packet must be the PUBREL, not a new PUBLISH.
                conn.send(Packet::PubRec(PubRec::new(id))).await;
                match conn.recv().await {
                    Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, id),
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                conn.send(Packet::PubComp(PubComp::new(id))).await;
            }
            Delivery::AtMostOnce => unreachable!("only QoS 1 and 2 here"),
        }
    }
    assert_eq!(max_seen, 2);
    while let Some(result) = publishes.join_next().await {
        result.unwrap().unwrap();
    }
}

/// The same against the Starling broker with `max_inflight_messages = 2`,
/// counted from the client's own packet trace.
#[tokio::test]
async fn receive_maximum_of_a_starling_broker_is_respected() {
    let broker = TestBroker::with_config(Config {
        max_inflight_messages: 2,
        ..Config::default()
    })
    .await;
    let inflight = Arc::new(Mutex::new((HashSet::<u16>::new(), 0usize)));
    let counter = Arc::clone(&inflight);
    let observer = Arc::new(move |trace: &PacketTrace<'_>| {
        let mut guard = counter.lock().unwrap();
        let (ids, max) = &mut *guard;
        match (trace.direction, trace.packet) {
            (Direction::Sent, Packet::Publish(p)) if p.packet_id().is_some() => {
                ids.insert(trace.message_id);
            }
            (Direction::Received, Packet::PubAck(_) | Packet::PubComp(_)) => {
                ids.remove(&trace.message_id);
            }
            _ => {}
        }
        *max = (*max).max(ids.len());
    });
    let options = broker
        .options(ProtocolVersion::V5, "burst")
        .packet_observer(observer);
    let (client, mut events) = Client::connect(options).await.unwrap();
    match next_event(&mut events).await {
        Some(Event::Connected { connack, .. }) => {
            assert_eq!(connack.properties.receive_maximum, NonZeroU16::new(2))
        }
        other => panic!("{other:?}"),
    }
    let mut publishes = tokio::task::JoinSet::new();
    for i in 0..20 {
        let client = client.clone();
        let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce][i % 2];
        publishes.spawn(async move { client.publish("burst", "x", qos, false).await });
    }
    while let Some(result) = publishes.join_next().await {
        result.unwrap().unwrap();
    }
    let (ids, max) = inflight.lock().unwrap().clone();
    assert!(ids.is_empty());
    assert!(
        (1..=2).contains(&max),
        "{max} in flight with the broker's Receive Maximum 2"
    );
    assert!(events.try_recv().is_none(), "no disconnection");
    broker.stop().await;
}

/// Publishes QoS 1 and 2 messages through a proxy that holds back the broker's
/// `hold` packets, cuts the connection once they were held, and checks that
/// after the client reconnects (Clean Start 0, session present) every message
/// is delivered, none lost, QoS 2 ones exactly once.
async fn cut_mid_flow(version: ProtocolVersion, hold: &[PacketType], qos: &[QoS]) {
    let broker = TestBroker::start().await;
    let (_sub, mut messages) = subscriber(&broker, version, "watcher", "flow/#").await;
    let proxy = Proxy::start(broker.addr, version).await;
    let options = ClientOptions::new(&proxy.url())
        .unwrap()
        .version(version)
        .client_id("cut-publisher")
        .clean_start(false)
        // v5 sessions end with the connection unless given an expiry.
        .session_expiry(Duration::from_secs(60))
        .reconnect(fast_reconnect());
    let (publisher, mut events) = Client::connect(options).await.unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Connected { .. })
    ));

    proxy.hold(hold);
    let mut publishes = tokio::task::JoinSet::new();
    for (i, &qos) in qos.iter().enumerate() {
        let publisher = publisher.clone();
        publishes.spawn(async move {
            let payload = format!("m{i}");
            (i, publisher.publish("flow/x", payload, qos, false).await)
        });
    }
    // Every PUBLISH reached the broker (the subscriber has them all) and the
    // answer that would complete each flow was held back.
    let mut first_pass = Vec::new();
    while first_pass.len() < qos.len() {
        first_pass.push(next_message(&mut messages).await);
    }
    eventually("the broker's answers held", || proxy.held() >= qos.len()).await;
    proxy.cut();

    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Disconnected { .. })
    ));
    match next_event(&mut events).await {
        Some(Event::Connected {
            session_present, ..
        }) => assert!(session_present, "{version}: the session is resumed"),
        other => panic!("{version}: expected Connected, got {other:?}"),
    }
    while let Some(joined) = publishes.join_next().await {
        let (i, result) = joined.unwrap();
        let published = result.unwrap_or_else(|e| panic!("{version}: m{i} failed: {e}"));
        assert_eq!(published.qos, qos[i]);
    }
    // A sentinel after all of them: anything delivered twice comes before it.
    publisher
        .publish("flow/x", "end", QoS::ExactlyOnce, false)
        .await
        .unwrap();
    let mut all = first_pass;
    all.extend(messages_until(&mut messages, "end").await);
    let mut counts = HashMap::new();
    for message in &all {
        *counts
            .entry(String::from_utf8(message.payload.to_vec()).unwrap())
            .or_insert(0) += 1;
    }
    for (i, &qos) in qos.iter().enumerate() {
        let n = counts.get(&format!("m{i}")).copied().unwrap_or(0);
        match qos {
            QoS::ExactlyOnce => assert_eq!(n, 1, "{version}: QoS 2 m{i} delivered {n} times"),
            _ => assert!(n >= 1, "{version}: QoS 1 m{i} lost"),
        }
    }
    assert_eq!(proxy.accepted(), 2, "one reconnection");
    publisher.disconnect().await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn cut_before_puback_and_pubrec_resends_publishes_with_dup() {
    let qos = [
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
        QoS::AtLeastOnce,
        QoS::ExactlyOnce,
    ];
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        cut_mid_flow(version, &[PacketType::PubAck, PacketType::PubRec], &qos).await;
    }
}

#[tokio::test]
async fn cut_after_pubrec_before_pubcomp_resends_pubrel() {
    let qos = [QoS::ExactlyOnce, QoS::ExactlyOnce, QoS::ExactlyOnce];
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        cut_mid_flow(version, &[PacketType::PubComp], &qos).await;
    }
}

#[tokio::test]
async fn resent_publishes_carry_dup_and_their_original_ids() {
    let broker = TestBroker::start().await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V5).await;
    let recorder = Recorder::default();
    let options = ClientOptions::new(&proxy.url())
        .unwrap()
        .version(ProtocolVersion::V5)
        .client_id("dup-check")
        .session_expiry(Duration::from_secs(60))
        .reconnect(fast_reconnect())
        .packet_observer(recorder.observer());
    let (publisher, _events) = Client::connect(options).await.unwrap();
    proxy.hold(&[PacketType::PubAck]);
    let pending = {
        let publisher = publisher.clone();
        tokio::spawn(async move { publisher.publish("t", "x", QoS::AtLeastOnce, false).await })
    };
    eventually("PUBACK held", || proxy.held() == 1).await;
    proxy.cut();
    pending.await.unwrap().unwrap();
    let packets = recorder.packets();
    let sent: Vec<_> = packets
        .iter()
        .filter_map(|(d, p, _)| match (d, p) {
            (Direction::Sent, Packet::Publish(p)) => Some((p.packet_id(), p.dup)),
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].0, sent[1].0, "same packet identifier");
    assert_eq!((sent[0].1, sent[1].1), (false, true), "DUP on the resend");
    // v5 with a session expiry reconnects with Clean Start 0 though it began clean.
    let connects: Vec<_> = packets
        .iter()
        .filter_map(|(_, p, _)| match p {
            Packet::Connect(c) => Some(c.clean_start),
            _ => None,
        })
        .collect();
    assert_eq!(connects, [true, false]);
    broker.stop().await;
}

#[tokio::test]
async fn publishes_made_offline_wait_in_a_bounded_queue() {
    let broker = TestBroker::start().await;
    let (_sub, mut messages) = subscriber(&broker, ProtocolVersion::V3_1_1, "w", "off/#").await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V3_1_1).await;
    let options = ClientOptions::new(&proxy.url())
        .unwrap()
        .client_id("offline")
        .clean_start(false)
        .offline_queue(3)
        .reconnect(fast_reconnect());
    let (publisher, mut events) = Client::connect(options).await.unwrap();
    next_event(&mut events).await;
    proxy.refuse(true);
    proxy.cut();
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Disconnected { .. })
    ));
    assert!(!publisher.is_connected());

    let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
    let mut waiting = Vec::new();
    for (i, qos) in qos.into_iter().enumerate() {
        let mut publish = Box::pin(publisher.publish("off/x", format!("q{i}"), qos, false));
        // Polled once: its command is in the channel, in order.
        assert!(tokio::time::timeout(Duration::ZERO, &mut publish)
            .await
            .is_err());
        waiting.push(publish);
    }
    let overflow = publisher
        .publish("off/x", "one too many", QoS::AtLeastOnce, false)
        .await;
    assert!(matches!(overflow, Err(Error::QueueFull(3))), "{overflow:?}");
    let subscribe = publisher.subscribe_one("x", QoS::AtMostOnce).await;
    assert!(matches!(subscribe, Err(Error::NotConnected)));

    proxy.refuse(false);
    for publish in waiting {
        tokio::time::timeout(WAIT, publish).await.unwrap().unwrap();
    }
    let got = messages_until(&mut messages, "q2").await;
    let payloads: Vec<_> = got.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, ["q0", "q1", "q2"]);
    broker.stop().await;
}

#[tokio::test]
async fn keep_alive_pings_keep_an_idle_connection_up() {
    let broker = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let recorder = Recorder::default();
        let options = broker
            .options(version, "idle")
            .keep_alive(Duration::from_secs(1))
            .packet_observer(recorder.observer());
        let (client, mut events) = Client::connect(options).await.unwrap();
        next_event(&mut events).await;
        // Idle for about 3 s: a ping each second, each answered.
        eventually("three PINGRESPs", || {
            recorder.count(Direction::Received, PacketType::PingResp) >= 3
        })
        .await;
        assert!(client.is_connected());
        assert!(events.try_recv().is_none(), "{version}: no disconnection");
        let sent = recorder.summary();
        assert!(sent.iter().all(|(_, t, _)| matches!(
            t,
            PacketType::Connect | PacketType::ConnAck | PacketType::PingReq | PacketType::PingResp
        )));
        client
            .publish("t", "still here", QoS::AtLeastOnce, false)
            .await
            .unwrap();
        client.disconnect().await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn missing_pingresp_closes_the_connection() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url())
        .unwrap()
        .client_id("unanswered")
        .keep_alive(Duration::from_secs(1))
        .reconnect(ReconnectPolicy::Off);
    let connect = tokio::spawn(Client::connect(options));
    let (mut conn, connect_packet) = fake.accept().await;
    assert_eq!(connect_packet.keep_alive, 1);
    conn.send(Packet::ConnAck(ConnAck::default())).await;
    let (client, mut events) = connect.await.unwrap().unwrap();
    assert!(matches!(conn.recv().await, Some(Packet::PingReq)));
    next_event(&mut events).await;
    match next_event(&mut events).await {
        Some(Event::Disconnected {
            reason: Error::KeepAliveTimeout(d),
        }) => assert_eq!(d, Duration::from_secs(1)),
        other => panic!("expected a keep-alive timeout, got {other:?}"),
    }
    assert!(next_event(&mut events).await.is_none());
    assert!(!client.is_connected());
    let late = client.publish("t", "x", QoS::AtMostOnce, false).await;
    assert!(matches!(late, Err(Error::Closed)), "{late:?}");
}

#[tokio::test]
async fn server_keep_alive_is_honoured() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url())
        .unwrap()
        .version(ProtocolVersion::V5)
        .keep_alive(Duration::from_secs(600));
    let connect = tokio::spawn(Client::connect(options));
    let (mut conn, _) = fake.accept().await;
    let mut connack = ConnAck::default();
    connack.properties.server_keep_alive = Some(1);
    conn.send(Packet::ConnAck(connack)).await;
    let (_client, _events) = connect.await.unwrap().unwrap();
    // A PINGREQ after 1 s, not 600.
    assert!(matches!(conn.recv().await, Some(Packet::PingReq)));
    conn.send(Packet::PingResp).await;
    assert!(matches!(conn.recv().await, Some(Packet::PingReq)));
}

/// [MQTT-4.3.3-10]: a DUP resend of a QoS 2 PUBLISH not yet released is
/// acknowledged again but delivered once.
#[tokio::test]
async fn incoming_qos2_resend_is_delivered_once() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url()).unwrap().client_id("eo");
    let connect = tokio::spawn(Client::connect(options));
    let (mut conn, _) = fake.accept().await;
    conn.send(Packet::ConnAck(ConnAck::default())).await;
    let (_client, mut events) = connect.await.unwrap().unwrap();
    next_event(&mut events).await;

    let id = starling_proto::PacketId::new(7).unwrap();
    let mut publish = Publish::new(TopicName::try_from("eo/t").unwrap(), "once");
    publish.delivery = Delivery::ExactlyOnce(id);
    conn.send(Packet::Publish(publish.clone())).await;
    assert_eq!(conn.recv().await, Some(Packet::PubRec(PubRec::new(id))));
    publish.dup = true;
    conn.send(Packet::Publish(publish)).await;
    assert_eq!(conn.recv().await, Some(Packet::PubRec(PubRec::new(id))));
    conn.send(Packet::PubRel(PubRel::new(id))).await;
    assert_eq!(conn.recv().await, Some(Packet::PubComp(PubComp::new(id))));
    // Then a QoS 1 sentinel: the only messages before it are one "once".
    let mut sentinel = Publish::new(TopicName::try_from("eo/t").unwrap(), "end");
    sentinel.delivery = Delivery::AtLeastOnce(starling_proto::PacketId::new(8).unwrap());
    conn.send(Packet::Publish(sentinel)).await;
    let got = messages_until(&mut events, "end").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].payload, "once".as_bytes());
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
}

#[tokio::test]
async fn a_v5_failure_code_rejects_the_publish() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url())
        .unwrap()
        .version(ProtocolVersion::V5);
    let connect = tokio::spawn(Client::connect(options));
    let (mut conn, _) = fake.accept().await;
    conn.send(Packet::ConnAck(ConnAck::default())).await;
    let (client, _events) = connect.await.unwrap().unwrap();
    let publish = tokio::spawn({
        let client = client.clone();
        async move { client.publish("t", "x", QoS::AtLeastOnce, false).await }
    });
    let Some(Packet::Publish(p)) = conn.recv().await else {
        panic!("expected PUBLISH")
    };
    let mut ack = PubAck::new(p.packet_id().unwrap());
    ack.reason_code = ReasonCode::NOT_AUTHORIZED;
    ack.properties.reason_string = Some("no".try_into().unwrap());
    conn.send(Packet::PubAck(ack)).await;
    let result = publish.await.unwrap();
    assert!(
        matches!(&result, Err(Error::Rejected { reason_code: ReasonCode::NOT_AUTHORIZED, reason_string: Some(s) }) if s == "no"),
        "{result:?}"
    );
}

/// With a tiny event channel the client pauses reading while the application
/// is behind; nothing is lost and the order holds.
#[tokio::test]
async fn a_slow_reader_loses_nothing() {
    let broker = TestBroker::start().await;
    let options = broker
        .options(ProtocolVersion::V5, "slow")
        .event_capacity(1);
    let (sub, mut events) = Client::connect(options).await.unwrap();
    sub.subscribe_one("slow/#", QoS::AtLeastOnce).await.unwrap();
    let (publisher, _e) = Client::connect(broker.options(ProtocolVersion::V5, "fast"))
        .await
        .unwrap();
    for i in 0..200 {
        publisher
            .publish("slow/x", format!("{i}"), QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    let got = messages_until(&mut events, "199").await;
    let payloads: Vec<_> = got
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    let expected: Vec<_> = (0..200).map(|i| i.to_string()).collect();
    assert_eq!(payloads, expected);
    broker.stop().await;
}

/// Without a session to resume (v5, no session expiry), unacknowledged
/// messages are sent again as new messages: still delivered, at least once.
#[tokio::test]
async fn a_lost_session_sends_unacknowledged_messages_again_as_new() {
    let broker = TestBroker::start().await;
    let (_sub, mut messages) = subscriber(&broker, ProtocolVersion::V5, "w", "fresh/#").await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V5).await;
    let recorder = Recorder::default();
    let options = ClientOptions::new(&proxy.url())
        .unwrap()
        .version(ProtocolVersion::V5)
        .client_id("forgetful")
        .reconnect(fast_reconnect())
        .packet_observer(recorder.observer());
    let (publisher, mut events) = Client::connect(options).await.unwrap();
    next_event(&mut events).await;
    proxy.hold(&[PacketType::PubAck]);
    let pending = tokio::spawn({
        let publisher = publisher.clone();
        async move {
            publisher
                .publish("fresh/x", "again", QoS::AtLeastOnce, false)
                .await
        }
    });
    assert_eq!(
        next_message(&mut messages).await.payload,
        "again".as_bytes()
    );
    eventually("PUBACK held", || proxy.held() == 1).await;
    proxy.cut();
    next_event(&mut events).await;
    match next_event(&mut events).await {
        Some(Event::Connected {
            session_present, ..
        }) => assert!(!session_present),
        other => panic!("expected Connected, got {other:?}"),
    }
    pending.await.unwrap().unwrap();
    assert_eq!(
        next_message(&mut messages).await.payload,
        "again".as_bytes()
    );
    let sent: Vec<_> = recorder
        .packets()
        .into_iter()
        .filter_map(|(d, p, _)| match (d, p) {
            (Direction::Sent, Packet::Publish(p)) => Some((p.packet_id().unwrap().get(), p.dup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [(1, false), (2, false)],
        "a new message: new id, no DUP"
    );
    broker.stop().await;
}
