//! QoS over real sockets: the QoS a subscriber receives, exactly-once delivery
//! of QoS 2 messages the publisher sends twice, PUBREL for an unknown packet
//! identifier, ordering, and flow control towards the client (v5 Receive
//! Maximum, `max_inflight_messages` for 3.x).

mod common;

use std::collections::BTreeMap;

use common::*;
use starling_broker::Config;
use starling_proto::{Connect, Packet, PubAck, PubComp, PubRec, PubRel, QoS, ReasonCode};

const LEVELS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

#[tokio::test]
async fn delivered_qos_is_the_lower_of_published_and_granted() {
    // [MQTT-3.8.4-8] (3.1.1 [MQTT-3.8.4-6]): a message goes out at the minimum
    // of the QoS it was published with and the QoS the subscription was granted.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = accepted(&broker, connect(version, "sub")).await.0;
        for granted in LEVELS {
            let filter = format!("grant/{version}/{}", granted.as_u8());
            let codes = sub.subscribe(1, &filter, granted).await;
            assert_eq!(codes, vec![ReasonCode(granted.as_u8())]);
        }
        let mut publisher = accepted(&broker, connect(V5, "pub")).await.0;
        let mut expected = BTreeMap::new();
        let mut id = 0;
        for granted in LEVELS {
            for published in LEVELS {
                id += 1;
                let name = format!("grant/{version}/{}", granted.as_u8());
                let payload = format!("p{}g{}", published.as_u8(), granted.as_u8());
                let mut p = publish(&name, "", published, id);
                p.payload = payload.clone().into();
                publish_flow(&mut publisher, p).await;
                expected.insert(payload, published.min(granted));
            }
        }
        let got: BTreeMap<String, QoS> = receive_n(&mut sub, expected.len())
            .await
            .iter()
            .map(|p| (text(p).to_owned(), p.qos()))
            .collect();
        assert_eq!(got, expected, "{version}");
        disconnect(sub).await;
        disconnect(publisher).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn qos2_publish_sent_again_before_pubrel_is_delivered_once() {
    // [MQTT-4.3.3-8]: PUBREC for the PUBLISH; [MQTT-4.3.3-10]: a PUBLISH with
    // the same Packet Identifier before PUBREL is acknowledged again and not
    // delivered again; [MQTT-4.3.3-11]: PUBCOMP answers PUBREL;
    // [MQTT-4.3.3-12]: after PUBCOMP the identifier starts a new message.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = watcher(&broker, "sub", "once/#").await;
        let mut publisher = accepted(&broker, connect(version, "pub")).await.0;
        let first = publish("once/a", "only once", QoS::ExactlyOnce, 7);
        let mut again = first.clone();
        again.dup = true;
        for p in [first, again] {
            publisher.send(Packet::Publish(p)).await;
            match publisher.recv().await {
                Some(Packet::PubRec(rec)) => {
                    assert_eq!(rec.packet_id, pid(7));
                    assert_eq!(rec.reason_code, ReasonCode::SUCCESS);
                }
                other => panic!("{version}: expected PUBREC, got {other:?}"),
            }
        }
        publisher.send(Packet::PubRel(PubRel::new(pid(7)))).await;
        match publisher.recv().await {
            Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, pid(7)),
            other => panic!("{version}: expected PUBCOMP, got {other:?}"),
        }
        expect_payload(&mut sub, "only once").await;
        // The same identifier again, after PUBCOMP: a new message.
        send_message(&mut publisher, "once/a", "new message", QoS::ExactlyOnce, 7).await;
        expect_payload(&mut sub, "new message").await;
        disconnect(publisher).await;
        disconnect(sub).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn pubrel_for_an_unknown_packet_id_gets_pubcomp() {
    // [MQTT-4.3.3-11]: PUBREL is answered with PUBCOMP of the same identifier;
    // for one the broker never received, v5 says 0x92 (Packet Identifier not
    // found, MQTT 5.0 §3.7.2.1).
    let broker = TestBroker::start().await;
    for (version, reason) in [
        (V3_1, ReasonCode::SUCCESS),
        (V3_1_1, ReasonCode::SUCCESS),
        (V5, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
    ] {
        let (mut client, _) = accepted(&broker, connect(version, "stray")).await;
        client.send(Packet::PubRel(PubRel::new(pid(42)))).await;
        match client.recv().await {
            Some(Packet::PubComp(comp)) => {
                assert_eq!(comp.packet_id, pid(42), "{version}");
                assert_eq!(comp.reason_code, reason, "{version}");
            }
            other => panic!("{version}: expected PUBCOMP, got {other:?}"),
        }
        // The connection carries on.
        sync(&mut client).await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn qos1_messages_from_one_publisher_arrive_in_order() {
    // [MQTT-4.6.0-5], [MQTT-4.6.0-6]: every topic is ordered by default, so
    // PUBLISHes reach a subscriber in the order a client sent them, here 200
    // sent without waiting for their PUBACKs.
    const N: u16 = 200;
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let mut sub = accepted(&broker, connect(version, "sub")).await.0;
        sub.subscribe(1, "order/#", QoS::AtLeastOnce).await;
        let mut publisher = accepted(&broker, connect(version, "pub")).await.0;
        let sending = tokio::spawn(async move {
            for i in 1..=N {
                let mut p = publish("order/a", "", QoS::AtLeastOnce, i);
                p.payload = i.to_string().into();
                publisher.send(Packet::Publish(p)).await;
            }
            for i in 1..=N {
                match publisher.recv().await {
                    // [MQTT-4.6.0-2] asks clients for PUBACKs in order; the broker does the same.
                    Some(Packet::PubAck(ack)) => assert_eq!(ack.packet_id, pid(i)),
                    other => panic!("expected PUBACK {i}, got {other:?}"),
                }
            }
            publisher
        });
        let got = receive_n(&mut sub, N.into()).await;
        let got: Vec<u16> = got.iter().map(|p| text(p).parse().unwrap()).collect();
        assert_eq!(got, (1..=N).collect::<Vec<_>>(), "{version}");
        disconnect(sending.await.unwrap()).await;
        disconnect(sub).await;
    }
    broker.stop().await;
}

/// Publishes `payloads` alternately at QoS 1 and 2 to `name`.
async fn publish_mixed(publisher: &mut RawClient, name: &str, payloads: &[&'static str]) {
    for (i, payload) in payloads.iter().enumerate() {
        let qos = if i % 3 == 0 {
            QoS::ExactlyOnce
        } else {
            QoS::AtLeastOnce
        };
        send_message(publisher, name, payload, qos, i as u16 + 1).await;
    }
}

/// Receives the next PUBLISH and asserts it carries `payload`, unacknowledged.
async fn next(client: &mut RawClient, payload: &str) -> starling_proto::Publish {
    let p = client.expect_publish().await;
    assert_eq!(text(&p), payload);
    p
}

/// Acknowledges a QoS 1 PUBLISH, or completes a QoS 2 one (PUBREC, then
/// PUBCOMP for the PUBREL, which must come before any further PUBLISH because
/// the window is still full until PUBCOMP).
async fn release(client: &mut RawClient, p: &starling_proto::Publish) {
    let id = p.packet_id().unwrap();
    if p.qos() == QoS::AtLeastOnce {
        return client.send(Packet::PubAck(PubAck::new(id))).await;
    }
    client.send(Packet::PubRec(PubRec::new(id))).await;
    match client.recv().await {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    // A PUBREC alone does not free a place (MQTT 5.0 §4.9).
    client.expect_nothing(QUIET).await;
    client.send(Packet::PubComp(PubComp::new(id))).await;
}

/// Checks that at most two QoS 1 and 2 deliveries are unacknowledged at once,
/// that the rest follow as places free up, and that other packets are not held
/// back meanwhile.
async fn window_of_two(sub: &mut RawClient, publisher: &mut RawClient, name: &str) {
    let payloads = ["a", "b", "c", "d", "e"];
    publish_mixed(publisher, name, &payloads).await;
    let a = next(sub, "a").await;
    let b = next(sub, "b").await;
    // Window full: nothing more [MQTT-3.3.4-9], [MQTT-4.9.0-2]...
    sub.expect_nothing(QUIET).await;
    // ...but a PINGREQ is still answered [MQTT-3.3.4-10], [MQTT-4.9.0-3].
    sync(sub).await;
    release(sub, &a).await; // QoS 2
    let c = next(sub, "c").await;
    sub.expect_nothing(QUIET).await;
    release(sub, &b).await;
    release(sub, &c).await;
    let d = next(sub, "d").await; // QoS 2
    let e = next(sub, "e").await;
    release(sub, &d).await;
    release(sub, &e).await;
    sub.expect_nothing(QUIET).await;
}

#[tokio::test]
async fn v5_receive_maximum_caps_unacknowledged_deliveries() {
    // [MQTT-3.3.4-9]: the broker never has more than the client's Receive
    // Maximum QoS 1 and 2 PUBLISHes unacknowledged (PUBACK, or PUBCOMP for QoS 2).
    let broker = TestBroker::start().await;
    let mut c: Connect = connect(V5, "small");
    c.properties.receive_maximum = std::num::NonZeroU16::new(2);
    let (mut sub, _) = accepted(&broker, c).await;
    sub.subscribe(1, "window/#", QoS::ExactlyOnce).await;
    let mut publisher = accepted(&broker, connect(V5, "pub")).await.0;
    window_of_two(&mut sub, &mut publisher, "window/a").await;
    broker.stop().await;
}

#[tokio::test]
async fn max_inflight_messages_caps_unacknowledged_deliveries_to_v3_clients() {
    // 3.x has no Receive Maximum: Mosquitto's max_inflight_messages plays its
    // part (the same rule as [MQTT-3.3.4-9]).
    let broker = TestBroker::with_config(Config {
        sys_interval: None,
        max_inflight_messages: 2,
        ..Config::default()
    })
    .await;
    for version in [V3_1, V3_1_1] {
        let (mut sub, _) = accepted(&broker, connect(version, "small")).await;
        sub.subscribe(1, "window/#", QoS::ExactlyOnce).await;
        let mut publisher = accepted(&broker, connect(version, "pub")).await.0;
        window_of_two(&mut sub, &mut publisher, "window/a").await;
        disconnect(sub).await;
        disconnect(publisher).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn resent_publishes_respect_the_new_receive_maximum() {
    // [MQTT-3.3.4-9] on a resumed session: MQTT 5.0 §4.9 starts the send quota
    // afresh with each connection, and the PUBLISHes resent on resume
    // [MQTT-4.4.0-1] count against it. Four left unacknowledged under a
    // Receive Maximum of 10 come back two at a time under a Receive Maximum of 2.
    let broker = TestBroker::start().await;
    let mut publisher = accepted(&broker, connect(V5, "pub")).await.0;
    let resume = |receive_maximum: u16| {
        let mut c = persistent(V5, "narrowed", 3600);
        c.properties.receive_maximum = std::num::NonZeroU16::new(receive_maximum);
        c
    };
    let (mut sub, _) = accepted(&broker, resume(10)).await;
    sub.subscribe(1, "narrow/#", QoS::AtLeastOnce).await;
    for (i, payload) in ["a", "b", "c", "d"].into_iter().enumerate() {
        send_message(
            &mut publisher,
            "narrow/x",
            payload,
            QoS::AtLeastOnce,
            i as u16 + 1,
        )
        .await;
    }
    let sent: Vec<_> = receive_unacknowledged(&mut sub, 4).await;
    drop(sub);

    let (mut sub, ack) = accepted(&broker, resume(2)).await;
    assert!(ack.session_present);
    let mut again = Vec::new();
    while again.len() < sent.len() {
        let first = sub.expect_publish().await;
        let second = sub.expect_publish().await;
        sub.expect_nothing(QUIET).await;
        for p in [first, second] {
            sub.send(Packet::PubAck(PubAck::new(p.packet_id().unwrap())))
                .await;
            again.push(p);
        }
    }
    for (original, resent) in sent.iter().zip(&again) {
        assert_eq!(text(resent), text(original), "[MQTT-4.6.0-5] order");
        assert_eq!(resent.packet_id(), original.packet_id(), "[MQTT-4.4.0-1]");
        assert!(resent.dup, "[MQTT-3.3.1-1]");
    }
    broker.stop().await;
}

/// Receives `n` PUBLISHes without acknowledging any.
async fn receive_unacknowledged(client: &mut RawClient, n: usize) -> Vec<starling_proto::Publish> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(client.expect_publish().await);
    }
    got
}

/// An acknowledgement of the wrong type for a message in flight is a
/// protocol violation that closes the connection: MQTT 3.1.1
/// [MQTT-4.8.0-1], MQTT 5.0 §4.13 with DISCONNECT 0x82 Protocol Error, as
/// Mosquitto does. One for an identifier that is not in flight is not (it may
/// answer what an earlier connection completed): the connection stays.
#[tokio::test]
async fn an_acknowledgement_of_the_wrong_type_closes_the_connection() {
    let broker = TestBroker::start().await;
    // The QoS delivered and the wrong answer to it (the last: a PUBCOMP
    // before any PUBREC and PUBREL).
    type WrongAck = fn(starling_proto::PacketId) -> Packet;
    let cases: [(QoS, WrongAck); 4] = [
        (QoS::AtLeastOnce, |id| Packet::PubRec(PubRec::new(id))),
        (QoS::AtLeastOnce, |id| Packet::PubComp(PubComp::new(id))),
        (QoS::ExactlyOnce, |id| Packet::PubAck(PubAck::new(id))),
        (QoS::ExactlyOnce, |id| Packet::PubComp(PubComp::new(id))),
    ];
    for version in [V3_1_1, V5] {
        for (n, (qos, wrong)) in cases.iter().enumerate() {
            let id = format!("wrong-ack-{version}-{n}");
            let mut sub = accepted(&broker, connect(version, &id)).await.0;
            let filter = format!("wrong/{version}/{n}");
            sub.subscribe(1, &filter, *qos).await;
            // An acknowledgement for nothing in flight is let pass.
            sub.send(Packet::PubAck(PubAck::new(pid(77)))).await;
            sync(&mut sub).await;
            let mut publisher = accepted(&broker, connect(V5, "wrong-pub")).await.0;
            publisher
                .send(Packet::Publish(publish(&filter, "m", *qos, 1)))
                .await;
            let delivered = sub.expect_publish().await;
            let packet_id = delivered.delivery.packet_id().expect("QoS 1 or 2");
            sub.send(wrong(packet_id)).await;
            let reason = disconnect_reason(&mut sub).await;
            if version.is_v5() {
                assert_eq!(
                    reason,
                    Some(ReasonCode::PROTOCOL_ERROR),
                    "{version} case {n}"
                );
            } else {
                assert_eq!(reason, None, "{version} case {n}: closed, no DISCONNECT");
            }
            // Its PUBACK or PUBREC may still be unread.
            send_disconnect(publisher).await;
        }
    }
    broker.stop().await;
}
