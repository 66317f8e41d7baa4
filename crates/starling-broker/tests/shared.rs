//! Shared subscriptions (`$share/{group}/{filter}`, MQTT 5.0 §4.8.2) over real
//! sockets: round-robin within a group, a copy per group and per non-shared
//! subscription, no retained messages, No Local refused, and what becomes of
//! unacknowledged messages when a member leaves. 3.1.1 clients may join a
//! group too, as with Mosquitto.

mod common;

use std::collections::BTreeSet;

use common::*;
use starling_proto::{Packet, QoS, ReasonCode};

#[tokio::test]
async fn a_group_delivers_each_message_to_exactly_one_member_in_turn() {
    // MQTT 5.0 §4.8.2: one member of the group gets each message; Starling
    // chooses them round-robin, so every member gets its share.
    let broker = TestBroker::start().await;
    let mut members = Vec::new();
    for (i, version) in [V5, V5, V3_1_1].into_iter().enumerate() {
        let mut m = connected(&broker, version, &format!("rr-{i}")).await;
        subscribe_one(&mut m, "$share/workers/jobs/+", opts(QoS::AtLeastOnce)).await;
        members.push(m);
    }
    let mut publisher = connected(&broker, V5, "rr-pub").await;
    for n in 0..9u16 {
        let reason = publish_flow(
            &mut publisher,
            message("jobs/a", format!("job {n}"), QoS::AtLeastOnce, n + 1),
        )
        .await;
        assert_eq!(reason, ReasonCode::SUCCESS);
    }
    let mut all = BTreeSet::new();
    for (i, m) in members.iter_mut().enumerate() {
        let got = drain(m).await;
        assert_eq!(got.len(), 3, "member {i}: its turn every third message");
        for p in got {
            assert!(all.insert(text(&p)), "{} delivered twice", text(&p));
        }
    }
    assert_eq!(all.len(), 9, "every message to one member");
    broker.stop().await;
}

#[tokio::test]
async fn each_group_and_each_non_shared_subscription_gets_a_copy() {
    // MQTT 5.0 §4.8.2: a copy per group and per non-shared subscription, a client
    // with both getting two; [MQTT-3.3.4-5]: each copy carries the identifier of
    // its subscription; [MQTT-4.8.2-3]: each at its subscription's granted QoS.
    let broker = TestBroker::start().await;
    let mut first = connected(&broker, V5, "grp-1").await;
    subscribe(
        &mut first,
        1,
        &[("$share/one/grp/t", opts(QoS::AtMostOnce))],
        Some(1),
    )
    .await;
    let mut second = connected(&broker, V5, "grp-2").await;
    subscribe(
        &mut second,
        1,
        &[("$share/two/grp/#", opts(QoS::ExactlyOnce))],
        Some(2),
    )
    .await;
    let mut plain = connected(&broker, V3_1_1, "grp-plain").await;
    subscribe_one(&mut plain, "grp/t", opts(QoS::AtLeastOnce)).await;
    let mut both = connected(&broker, V5, "grp-both").await;
    subscribe(
        &mut both,
        1,
        &[("$share/three/grp/t", opts(QoS::AtLeastOnce))],
        Some(3),
    )
    .await;
    subscribe(&mut both, 2, &[("grp/+", opts(QoS::AtMostOnce))], Some(4)).await;

    let mut publisher = connected(&broker, V5, "grp-pub").await;
    publish_flow(
        &mut publisher,
        message("grp/t", "hello", QoS::ExactlyOnce, 1),
    )
    .await;

    let got = drain(&mut first).await;
    assert_eq!(
        (got.len(), got[0].qos(), sub_ids(&got[0])),
        (1, QoS::AtMostOnce, vec![1])
    );
    let got = drain(&mut second).await;
    assert_eq!(
        (got.len(), got[0].qos(), sub_ids(&got[0])),
        (1, QoS::ExactlyOnce, vec![2])
    );
    let got = drain(&mut plain).await;
    assert_eq!((got.len(), got[0].qos()), (1, QoS::AtLeastOnce));
    let mut got: Vec<(Vec<u32>, QoS)> = drain(&mut both)
        .await
        .iter()
        .map(|p| (sub_ids(p), p.qos()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![(vec![3], QoS::AtLeastOnce), (vec![4], QoS::AtMostOnce)]
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_shared_subscription_gets_no_retained_messages() {
    // MQTT 5.0 §3.3.1.3: retained messages go to a new Non-shared Subscription only.
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "shr-pub").await;
    publish_flow(
        &mut publisher,
        retained("shr/t", "state", QoS::AtLeastOnce, 1),
    )
    .await;
    for version in [V5, V3_1_1] {
        let mut member = connected(&broker, version, &format!("shr-{version:?}")).await;
        subscribe_one(&mut member, "$share/g/shr/#", opts(QoS::AtLeastOnce)).await;
        member.expect_nothing(QUIET).await;
        subscribe_one(&mut member, "shr/#", opts(QoS::AtLeastOnce)).await;
        assert!(receive(&mut member).await.retain, "the non-shared one does");
    }
    broker.stop().await;
}

#[tokio::test]
async fn no_local_on_a_shared_subscription_is_a_protocol_error() {
    // [MQTT-3.8.3-4]: DISCONNECT 0x82.
    let broker = TestBroker::start().await;
    let mut client = connected(&broker, V5, "shnl").await;
    // The codec will not encode it: set the No Local bit in the bytes.
    let subscribe = Packet::Subscribe(starling_proto::Subscribe {
        packet_id: pid(1),
        filters: vec![(
            starling_proto::TopicFilter::from_static("$share/g/t"),
            opts(QoS::AtLeastOnce),
        )],
        properties: Default::default(),
    });
    let mut bytes = bytes::BytesMut::new();
    subscribe.encode(V5, &mut bytes).unwrap();
    *bytes.last_mut().unwrap() |= 0x04;
    client.send_bytes(&bytes).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    assert_eq!(broker.broker.subscription_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn unacknowledged_qos1_messages_of_a_member_that_leaves_go_to_another_member() {
    // MQTT 5.0 §4.8.2 (no statement id): the Server SHOULD send a QoS 1 message
    // the chosen member did not acknowledge to another member, and MAY do so as
    // soon as the first one's connection is lost.
    let broker = TestBroker::start().await;
    let mut leaving = connected(&broker, V5, "ho-leaving").await;
    subscribe_one(&mut leaving, "$share/g/ho/t", opts(QoS::AtLeastOnce)).await;
    let mut staying = connected(&broker, V3_1_1, "ho-staying").await;
    subscribe_one(&mut staying, "$share/g/ho/t", opts(QoS::AtLeastOnce)).await;

    let mut publisher = connected(&broker, V5, "ho-pub").await;
    for n in 1..=4u16 {
        publish_flow(
            &mut publisher,
            message("ho/t", format!("m{n}"), QoS::AtLeastOnce, n),
        )
        .await;
    }
    let mut unacked = BTreeSet::new();
    for _ in 0..2 {
        unacked.insert(text(&leaving.expect_publish().await));
    }
    let mut received: BTreeSet<String> = drain(&mut staying).await.iter().map(text).collect();
    assert_eq!(received.len(), 2);
    drop(leaving);

    for p in drain_until(&mut staying, 2).await {
        assert!(
            unacked.contains(&text(&p)),
            "{} was not the leaver's",
            text(&p)
        );
        assert!(received.insert(text(&p)));
    }
    let all: BTreeSet<String> = (1..=4).map(|n| format!("m{n}")).collect();
    assert_eq!(received, all);
    broker.stop().await;
}

#[tokio::test]
async fn a_qos2_message_in_flight_stays_with_its_member() {
    // [MQTT-4.8.2-4]: delivery of a QoS 2 message under way is completed with
    // the same client when it reconnects; [MQTT-4.8.2-5]: if its session ends
    // first, no other member gets it.
    let broker = TestBroker::start().await;
    let persistent = |clean| {
        let mut c = connect(V5, "q2-member");
        c.clean_start = clean;
        c.properties.session_expiry_interval = Some(60);
        c
    };
    let (mut member, _) = connect_with(&broker, persistent(true)).await;
    subscribe_one(&mut member, "$share/g/q2/t", opts(QoS::ExactlyOnce)).await;
    let mut other = connected(&broker, V5, "q2-other").await;
    subscribe_one(&mut other, "$share/g/q2/t", opts(QoS::ExactlyOnce)).await;
    let mut publisher = connected(&broker, V5, "q2-pub").await;
    publish_flow(&mut publisher, message("q2/t", "a", QoS::ExactlyOnce, 1)).await;
    publish_flow(&mut publisher, message("q2/t", "b", QoS::ExactlyOnce, 2)).await;

    let first = member.expect_publish().await;
    assert_eq!(first.qos(), QoS::ExactlyOnce);
    assert_eq!(drain(&mut other).await.len(), 1);
    drop(member); // no PUBREC
    other.expect_nothing(QUIET).await;

    let (mut member, connack) = connect_with(&broker, persistent(false)).await;
    assert!(connack.session_present);
    let again = member.expect_publish().await;
    assert!(again.dup, "[MQTT-3.3.1-1]");
    assert_eq!(
        (again.packet_id(), text(&again)),
        (first.packet_id(), text(&first))
    );
    ack(&mut member, &again).await;
    other.expect_nothing(QUIET).await;
    send_disconnect(member).await;

    // A member whose session ends with its connection.
    let mut ending = connected(&broker, V5, "q2-ending").await;
    subscribe_one(&mut ending, "$share/h/q2/t", opts(QoS::ExactlyOnce)).await;
    let mut remaining = connected(&broker, V5, "q2-remaining").await;
    subscribe_one(&mut remaining, "$share/h/q2/t", opts(QoS::ExactlyOnce)).await;
    publish_flow(&mut publisher, message("q2/t", "c", QoS::ExactlyOnce, 3)).await;
    publish_flow(&mut publisher, message("q2/t", "d", QoS::ExactlyOnce, 4)).await;
    let _ = ending.expect_publish().await;
    assert_eq!(drain(&mut remaining).await.len(), 1);
    drop(ending);
    remaining.expect_nothing(QUIET).await;
    broker.stop().await;
}

/// Receives exactly `n` PUBLISHes (acknowledging them), then nothing.
async fn drain_until(client: &mut RawClient, n: usize) -> Vec<starling_proto::Publish> {
    let mut got = Vec::new();
    while got.len() < n {
        got.push(receive(client).await);
    }
    got.extend(drain(client).await);
    assert_eq!(got.len(), n, "{got:?}");
    got
}
