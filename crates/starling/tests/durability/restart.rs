//! Restart tests: each stored item survives a graceful stop (SIGTERM, the
//! `graceful` tests) and a crash (SIGKILL, the `kill` tests).

use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_proto::property::{PublishProperties, WillProperties};
use starling_proto::{
    Delivery, Packet, PacketId, PubComp, PubRel, Publish, QoS, ReasonCode, SubscriptionOptions,
};

use super::common::raw::{message, mqtt_string, retained, text, will, Login, Raw};
use super::common::restartable::{Starling, Stop};
use super::{payloads, publish_marker, resume, topic, user};

/// Runs each restart test once with SIGTERM and once with SIGKILL.
macro_rules! with_both_stops {
    ($($test:ident),* $(,)?) => {
        /// The restart tests with a graceful stop (SIGTERM).
        mod graceful {
            $(#[test] fn $test() { super::$test(super::Stop::Graceful) })*
        }
        /// The restart tests with a crash (SIGKILL).
        mod kill {
            $(#[test] fn $test() { super::$test(super::Stop::Kill) })*
        }
    };
}

with_both_stops!(
    retained_messages_keep_their_properties,
    subscriptions_keep_their_options,
    queued_messages_keep_their_order,
    unacknowledged_deliveries_are_resent_with_dup,
    pubrel_pending_is_resent_as_pubrel,
    inbound_qos2_awaiting_pubrel_is_not_routed_twice,
    a_delayed_will_is_published_after_the_restart,
    an_expired_session_is_gone_after_the_restart,
    an_expired_message_is_dropped_after_the_restart,
    a_retained_message_at_the_deepest_topic_survives_restarts_and_shutdown,
    the_will_of_a_session_that_expired_while_down_is_published,
);

/// A retained message survives the restart [MQTT-3.3.1-5] with its MQTT 5.0
/// properties, User Properties in their order [MQTT-3.3.2-18], its Message
/// Expiry counted down [MQTT-3.3.2-6]; a retained message removed by an
/// empty payload stays removed [MQTT-3.3.1-6].
fn retained_messages_keep_their_properties(stop: Stop) {
    let mut broker = Starling::new("retained", "").started();
    let port = broker.port();
    let properties = PublishProperties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(3600),
        content_type: Some(mqtt_string("text/plain; charset=utf-8")),
        response_topic: Some(topic("ret/reply")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
        user_properties: vec![user("k", "v"), user("origin", "test"), user("k", "w")],
        ..Default::default()
    };
    let (mut p5, _) = Raw::connect(port, Login::v5("ret-pub5"));
    let mut with_properties = retained("ret/a", "with properties", QoS::AtLeastOnce);
    with_properties.properties = properties.clone().into();
    for publish in [
        with_properties,
        retained("ret/c", "soon removed", QoS::AtLeastOnce),
        retained("ret/c", "", QoS::AtLeastOnce),
    ] {
        let code = p5.publish(publish);
        assert!(!code.is_error(), "retained publish refused: {code}");
    }
    p5.disconnect();
    let (mut p3, _) = Raw::connect(port, Login::v311("ret-pub3"));
    p3.publish(retained("ret/b", "from 3.1.1", QoS::ExactlyOnce));
    p3.disconnect();

    broker.restart(stop);

    let (mut sub, _) = Raw::connect(port, Login::v5("ret-sub"));
    sub.subscribe_one("ret/#", QoS::ExactlyOnce);
    publish_marker(port, "ret/zz-marker", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    let topics: Vec<&str> = messages.iter().map(|m| m.topic.as_str()).collect();
    let mut sorted = topics.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["ret/a", "ret/b"],
        "retained messages after {stop}: ret/a and ret/b kept, ret/c removed [MQTT-3.3.1-6]"
    );
    for message in &messages {
        assert!(
            message.retain,
            "{}: RETAIN flag of a retained message",
            message.topic.as_str()
        );
        match message.topic.as_str() {
            "ret/a" => {
                assert_eq!(text(message), "with properties");
                assert_eq!(message.qos(), QoS::AtLeastOnce);
                let got = &message.properties;
                assert_eq!(
                    got.payload_format_indicator,
                    properties.payload_format_indicator
                );
                assert_eq!(
                    got.content_type, properties.content_type,
                    "content type after {stop}"
                );
                assert_eq!(got.response_topic, properties.response_topic);
                assert_eq!(got.correlation_data, properties.correlation_data);
                assert_eq!(
                    got.user_properties, properties.user_properties,
                    "user properties, in order, after {stop} [MQTT-3.3.2-18]"
                );
                let expiry = got
                    .message_expiry_interval
                    .expect("the Message Expiry Interval after the restart [MQTT-3.3.2-6]");
                assert!(
                    (3500..=3600).contains(&expiry),
                    "Message Expiry Interval {expiry} after {stop}: counted down from 3600"
                );
            }
            _ => {
                assert_eq!(text(message), "from 3.1.1");
                assert_eq!(message.qos(), QoS::ExactlyOnce);
            }
        }
    }
    sub.disconnect();
}

/// A persistent session keeps its subscriptions and their options across
/// the restart [MQTT-3.1.2-4]: QoS, No Local [MQTT-3.8.3-3], Retain As
/// Published [MQTT-3.3.1-13] / [MQTT-3.3.1-12], Subscription Identifiers
/// [MQTT-3.3.4-3]; also a 3.1.1 session's.
fn subscriptions_keep_their_options(stop: Stop) {
    let mut broker = Starling::new("subscriptions", "").started();
    let port = broker.port();
    let v5 = Login::v5("opts-sub").persistent();
    let v311 = Login::v311("opts-sub3").persistent();
    let (mut sub, _) = Raw::connect(port, v5.clone());
    let mut own_and_kept = SubscriptionOptions::new(QoS::AtLeastOnce);
    own_and_kept.no_local = true;
    own_and_kept.retain_as_published = true;
    sub.subscribe(&[("opts/a", own_and_kept)], Some(42));
    sub.subscribe(
        &[("opts/b", SubscriptionOptions::new(QoS::ExactlyOnce))],
        Some(7),
    );
    sub.disconnect();
    let (mut sub3, _) = Raw::connect(port, v311.clone());
    sub3.subscribe_one("opts/+", QoS::AtLeastOnce);
    sub3.disconnect();

    broker.restart(stop);

    let mut sub = resume(port, v5, stop);
    let mut sub3 = resume(port, v311, stop);
    // Its own message must not come back (No Local).
    let code = sub.publish(message("opts/a", "own", QoS::AtLeastOnce));
    assert!(!code.is_error(), "{code}");
    let (mut publisher, _) = Raw::connect(port, Login::v5("opts-pub"));
    publisher.publish(retained("opts/a", "kept as published", QoS::ExactlyOnce));
    publisher.publish(retained("opts/b", "flag cleared", QoS::ExactlyOnce));
    publisher.publish(message("opts/b", "marker", QoS::AtLeastOnce));
    publisher.disconnect();

    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["kept as published", "flag cleared"],
        "opts-sub after {stop}: its own message must not come back (No Local) [MQTT-3.8.3-3]"
    );
    let ids = |m: &Publish| -> Vec<u32> {
        m.properties
            .subscription_identifiers
            .iter()
            .map(|id| id.get())
            .collect()
    };
    let (a, b) = (&messages[0], &messages[1]);
    assert_eq!(
        a.qos(),
        QoS::AtLeastOnce,
        "opts/a: the subscription's QoS 1"
    );
    assert!(
        a.retain,
        "opts/a: Retain As Published keeps RETAIN [MQTT-3.3.1-13]"
    );
    assert_eq!(
        ids(a),
        [42],
        "opts/a: Subscription Identifier [MQTT-3.3.4-3]"
    );
    assert_eq!(
        b.qos(),
        QoS::ExactlyOnce,
        "opts/b: the subscription's QoS 2"
    );
    assert!(
        !b.retain,
        "opts/b: without Retain As Published RETAIN is 0 [MQTT-3.3.1-12]"
    );
    assert_eq!(
        ids(b),
        [7],
        "opts/b: Subscription Identifier [MQTT-3.3.4-3]"
    );

    let (messages, marker) = sub3.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["own", "kept as published", "flag cleared"],
        "opts-sub3 (3.1.1) after {stop}"
    );
    assert!(
        messages
            .iter()
            .chain([&marker])
            .all(|m| m.qos() == QoS::AtLeastOnce),
        "opts-sub3's subscription QoS 1 after {stop}"
    );
    sub.disconnect();
    sub3.disconnect();
}

/// Messages queued for offline persistent sessions survive the restart, in
/// the order they were published (per QoS that is [MQTT-4.6.0-6]; Starling
/// keeps one order across QoS levels, and so must its store), at their QoS;
/// with `queue_qos0_messages true` QoS 0 ones too.
fn queued_messages_keep_their_order(stop: Stop) {
    let mut broker = Starling::new("queued", "queue_qos0_messages true").started();
    let port = broker.port();
    let v5 = Login::v5("queue-sub").persistent();
    let v311 = Login::v311("queue-sub3").persistent();
    for (login, qos) in [(&v5, QoS::ExactlyOnce), (&v311, QoS::AtLeastOnce)] {
        let (mut sub, _) = Raw::connect(port, login.clone());
        sub.subscribe_one("queue/t", qos);
        sub.disconnect();
    }
    let qos_of = |i: usize| [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtMostOnce][i % 3];
    // The last one is QoS 1: once it is acknowledged, everything before it
    // was handled.
    const COUNT: usize = 31;
    let (mut publisher, _) = Raw::connect(port, Login::v5("queue-pub"));
    for i in 0..COUNT {
        publisher.publish(message("queue/t", format!("m{i:02}"), qos_of(i)));
    }
    publisher.disconnect();

    broker.restart(stop);

    let expected: Vec<String> = (0..COUNT).map(|i| format!("m{i:02}")).collect();
    let mut sub = resume(port, v5, stop);
    let mut sub3 = resume(port, v311, stop);
    publish_marker(port, "queue/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        expected,
        "queue-sub's queue after {stop}"
    );
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.qos(), qos_of(i), "{}: its QoS", text(m));
    }
    let (messages, _) = sub3.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        expected,
        "queue-sub3's queue after {stop}"
    );
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(
            m.qos(),
            qos_of(i).min(QoS::AtLeastOnce),
            "{}: its QoS",
            text(m)
        );
    }
    sub.disconnect();
    sub3.disconnect();
}

/// QoS 1 and 2 PUBLISHes sent to a subscriber that did not acknowledge them
/// before the broker went down are resent after the restart with DUP and
/// their original packet identifiers, in order [MQTT-4.4.0-1]
/// [MQTT-3.3.1-1], and only once acknowledged are they done.
fn unacknowledged_deliveries_are_resent_with_dup(stop: Stop) {
    let mut broker = Starling::new("inflight", "").started();
    let port = broker.port();
    let login = Login::v5("inflight-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("inflight/t", QoS::ExactlyOnce);
    let (mut publisher, _) = Raw::connect(port, Login::v5("inflight-pub"));
    publisher.publish(message("inflight/t", "first", QoS::AtLeastOnce));
    publisher.publish(message("inflight/t", "second", QoS::ExactlyOnce));
    publisher.disconnect();
    // Received, not acknowledged.
    let mut sent = Vec::new();
    while sent.len() < 2 {
        match sub.expect("the two PUBLISHes") {
            Packet::Publish(publish) => sent.push(publish),
            other => panic!("inflight-sub: expected PUBLISH, got {other:?}"),
        }
    }
    assert_eq!(payloads(&sent), ["first", "second"]);

    broker.restart(stop);
    sub.drop_connection();

    let mut sub = resume(port, login, stop);
    for before in &sent {
        let again = match sub.expect("the resent PUBLISH") {
            Packet::Publish(publish) => publish,
            other => panic!(
                "after {stop}: expected {:?} resent, got {other:?}",
                text(before)
            ),
        };
        assert_eq!(
            (text(&again), again.qos(), again.packet_id()),
            (text(before), before.qos(), before.packet_id()),
            "after {stop}: resent with the original packet identifier [MQTT-4.4.0-1]"
        );
        assert!(
            again.dup,
            "after {stop}: {:?} resent without DUP [MQTT-3.3.1-1]",
            text(&again)
        );
        sub.acknowledge(&again);
    }
    match sub.expect("PUBREL of the QoS 2 message") {
        Packet::PubRel(pubrel) => {
            assert_eq!(Some(pubrel.packet_id), sent[1].packet_id());
            sub.release(pubrel.packet_id);
        }
        other => panic!("after {stop}: expected PUBREL, got {other:?}"),
    }
    publish_marker(port, "inflight/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert!(
        messages.is_empty(),
        "after {stop}: acknowledged messages came again: {:?}",
        payloads(&messages)
    );
    sub.disconnect();
}

/// A QoS 2 delivery whose PUBREC the broker had received is completed with
/// PUBREL after the restart [MQTT-4.4.0-1], and its PUBLISH is not sent again
/// [MQTT-4.3.3-6]: the subscriber released it when it got PUBREL, so a
/// PUBLISH again would be a new message to it [MQTT-4.3.3-12], delivered
/// twice. The broker goes down the moment PUBREL arrives, three times, so
/// that a PUBREL sent before its state is stored is caught.
fn pubrel_pending_is_resent_as_pubrel(stop: Stop) {
    const ROUNDS: usize = 3;
    let mut broker = Starling::new("pubrel", "").started();
    let port = broker.port();
    let login = Login::v5("pubrel-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("pubrel/t", QoS::ExactlyOnce);
    for round in 1..=ROUNDS {
        let (mut publisher, _) = Raw::connect(port, Login::v5("pubrel-pub"));
        publisher.publish(message(
            "pubrel/t",
            format!("once-{round}"),
            QoS::ExactlyOnce,
        ));
        publisher.disconnect();
        let id = match sub.expect("PUBLISH") {
            Packet::Publish(publish) => {
                assert_eq!(text(&publish), format!("once-{round}"));
                sub.acknowledge(&publish); // PUBREC
                publish.packet_id().expect("QoS 2")
            }
            other => panic!("pubrel-sub: expected PUBLISH, got {other:?}"),
        };
        match sub.expect("PUBREL") {
            Packet::PubRel(pubrel) => assert_eq!(pubrel.packet_id, id),
            other => panic!("pubrel-sub: expected PUBREL, got {other:?}"),
        }
        // No PUBCOMP: the broker is left waiting for it.
        broker.restart(stop);
        sub.drop_connection();

        sub = resume(port, login.clone(), stop);
        match sub.expect("the resent PUBREL") {
            Packet::PubRel(pubrel) => {
                assert_eq!(pubrel.packet_id, id, "PUBREL's original packet identifier");
                sub.send(Packet::PubComp(PubComp::new(id)));
            }
            other => panic!(
                "round {round}, after {stop}: expected PUBREL {id} resent [MQTT-4.4.0-1], \
                 got {other:?} (a PUBLISH again after PUBREL breaks [MQTT-4.3.3-6]: the \
                 subscriber delivers it twice)"
            ),
        }
        // A QoS 1 marker: no flow of its own is left open for the next round.
        publish_marker(port, "pubrel/t", QoS::AtLeastOnce);
        let (messages, _) = sub.messages_until(b"marker");
        assert!(
            messages.is_empty(),
            "round {round}, after {stop}: the released message came again: {:?}",
            payloads(&messages)
        );
    }
    sub.disconnect();
}

/// A QoS 2 PUBLISH the broker answered with PUBREC before it went down:
/// resent by the publisher with DUP and the same packet identifier after the
/// restart, it is acknowledged again and not routed again; PUBREL finds its
/// identifier [MQTT-4.3.3-10] [MQTT-4.3.3-11]. The subscriber gets each
/// message exactly once.
fn inbound_qos2_awaiting_pubrel_is_not_routed_twice(stop: Stop) {
    let mut broker = Starling::new("inbound-qos2", "").started();
    let port = broker.port();
    let sub_login = Login::v5("inq2-sub").persistent();
    let (mut sub, _) = Raw::connect(port, sub_login.clone());
    sub.subscribe_one("inq2/t", QoS::ExactlyOnce);
    sub.disconnect();
    let pub_login = Login::v5("inq2-pub").persistent();
    let (mut publisher, _) = Raw::connect(port, pub_login.clone());
    let qos2 = |id: u16, payload: &'static str, dup: bool| {
        let mut publish = message("inq2/t", payload, QoS::ExactlyOnce);
        publish.delivery = Delivery::ExactlyOnce(PacketId::new(id).expect("non-zero"));
        publish.dup = dup;
        publish
    };
    for (id, payload) in [(7, "resent"), (8, "released")] {
        publisher.send(Packet::Publish(qos2(id, payload, false)));
        let code = publisher.wait_ack(PacketId::new(id).unwrap(), QoS::ExactlyOnce);
        assert_eq!(code, Some(ReasonCode::SUCCESS), "PUBREC of {payload}");
    }

    broker.restart(stop);
    publisher.drop_connection();

    let mut publisher = resume(port, pub_login, stop);
    // 7: the PUBLISH again, then PUBREL. 8: PUBREL only.
    publisher.send(Packet::Publish(qos2(7, "resent", true)));
    let code = publisher.wait_ack(PacketId::new(7).unwrap(), QoS::ExactlyOnce);
    assert!(
        code.is_some_and(|c| !c.is_error()),
        "after {stop}: the resent PUBLISH 7 got PUBREC {code:?}"
    );
    for id in [7, 8] {
        let id = PacketId::new(id).unwrap();
        publisher.send(Packet::PubRel(PubRel::new(id)));
        match publisher.expect("PUBCOMP") {
            Packet::PubComp(pubcomp) => {
                assert_eq!(pubcomp.packet_id, id);
                assert_eq!(
                    pubcomp.reason_code,
                    ReasonCode::SUCCESS,
                    "after {stop}: PUBCOMP {id}: the packet identifier awaiting PUBREL was \
                     forgotten (0x92 Packet Identifier not found)"
                );
            }
            other => panic!("after {stop}: expected PUBCOMP {id}, got {other:?}"),
        }
    }
    publisher.disconnect();

    let mut sub = resume(port, sub_login, stop);
    publish_marker(port, "inq2/t", QoS::ExactlyOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["resent", "released"],
        "after {stop}: each QoS 2 message exactly once [MQTT-4.3.3-10]"
    );
    sub.disconnect();
}

/// The will of a session whose connection was lost, waiting for its Will
/// Delay Interval when the broker went down, is published once after the
/// restart; after a crash, not before its delay has passed (MQTT 5.0
/// §3.1.3.2.2), and not at all if its client reconnects in time
/// [MQTT-3.1.3-9].
fn a_delayed_will_is_published_after_the_restart(stop: Stop) {
    const DELAY: u32 = 4;
    let mut broker = Starling::new("will", "").started();
    let port = broker.port();
    let sub_login = Login::v5("will-sub").persistent();
    let (mut sub, _) = Raw::connect(port, sub_login.clone());
    sub.subscribe_one("will/t", QoS::AtLeastOnce);
    sub.disconnect();
    let owner = |name: &str, payload: &'static str| {
        let mut will = will("will/t", payload, QoS::AtLeastOnce);
        will.properties = WillProperties {
            will_delay_interval: Some(DELAY),
            ..Default::default()
        };
        Login::v5(name).session_expiry(60).will(will)
    };
    let gone = owner("will-owner", "gone");
    let back = owner("will-owner2", "back in time");
    let (first, _) = Raw::connect(port, gone);
    let (second, _) = Raw::connect(port, back.clone());
    first.drop_connection();
    second.drop_connection();
    let lost_at = Instant::now();
    broker.wait_log("Client will-owner closed its connection.");
    broker.wait_log("Client will-owner2 closed its connection.");

    broker.restart(stop);

    let mut sub = resume(port, sub_login, stop);
    // After a crash, will-owner2 comes back within its delay: its will must
    // not be published. After a graceful stop it stays away: both are due.
    let expected: &[&str] = if stop == Stop::Kill {
        let (second, _) = Raw::connect(port, back.clean(false));
        second.disconnect();
        &["gone"]
    } else {
        &["back in time", "gone"]
    };
    let mut wills = Vec::new();
    let mut first_after = None;
    while wills.len() < expected.len() {
        let will = sub.expect_message(&format!("the delayed wills {expected:?}"));
        first_after.get_or_insert_with(|| lost_at.elapsed());
        wills.push(text(&will));
    }
    wills.sort();
    assert_eq!(wills, expected, "after {stop}: the wills published");
    if let (Stop::Kill, Some(after)) = (stop, first_after) {
        // Stored times may be whole seconds: a second of slack.
        assert!(
            after >= Duration::from_secs(u64::from(DELAY) - 1),
            "after {stop}: the will came {after:?} after the connection was lost, before its \
             delay of {DELAY} s (MQTT 5.0 §3.1.3.2.2)"
        );
    }
    // A will that was not due would come at about the same moment.
    if let Some(late) = sub.next_message(Duration::from_secs(1)) {
        panic!(
            "after {stop}: {:?} published too; will-owner2 reconnected within its will delay \
             [MQTT-3.1.3-9]",
            text(&late)
        );
    }
    publish_marker(port, "will/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert!(
        messages.is_empty(),
        "after {stop}: a will came more than once: {:?}",
        payloads(&messages)
    );
    sub.disconnect();
}

/// A session that ended while the broker was down (its expiry, 2 s, passed
/// during a 3 s downtime, before its will delay of 60 s): its will was due
/// when the session ended [MQTT-3.1.3-9], so it is published at the restart,
/// once; the session itself is gone.
fn the_will_of_a_session_that_expired_while_down_is_published(stop: Stop) {
    let mut broker = Starling::new("expired-will", "").started();
    let port = broker.port();
    let sub_login = Login::v5("ew-sub").persistent();
    let (mut sub, _) = Raw::connect(port, sub_login.clone());
    sub.subscribe_one("ew/t", QoS::AtLeastOnce);
    sub.disconnect();
    let mut last_will = will("ew/t", "expired meanwhile", QoS::AtLeastOnce);
    last_will.properties = WillProperties {
        will_delay_interval: Some(60),
        ..Default::default()
    };
    let owner = Login::v5("ew-owner")
        .clean(false)
        .session_expiry(2)
        .will(last_will);
    let (conn, _) = Raw::connect(port, owner.clone());
    conn.drop_connection();
    broker.wait_log("Client ew-owner closed its connection.");
    broker.stop(stop);
    thread::sleep(Duration::from_secs(3));
    broker.start();
    let mut sub = resume(port, sub_login, stop);
    let got = sub.expect_message("the will of the session that expired while the broker was down");
    assert_eq!(text(&got), "expired meanwhile", "after {stop}");
    let (again, connack) = Raw::connect(port, owner.clean(false));
    assert!(
        !connack.session_present,
        "after {stop}: the expired session is gone"
    );
    again.disconnect();
    publish_marker(port, "ew/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert!(
        messages.is_empty(),
        "after {stop}: the will came more than once: {:?}",
        payloads(&messages)
    );
    sub.disconnect();
}

/// A session whose Session Expiry Interval (2 s) passed while the broker was
/// down is gone after the restart: session present 0 [MQTT-3.2.2-3], its
/// queue discarded; a session with a longer expiry is resumed.
fn an_expired_session_is_gone_after_the_restart(stop: Stop) {
    let mut broker = Starling::new("session-expiry", "").started();
    let port = broker.port();
    let short = Login::v5("exp-short").clean(false).session_expiry(2);
    let long = Login::v5("exp-long").persistent();
    for login in [&short, &long] {
        let (mut sub, _) = Raw::connect(port, login.clone());
        sub.subscribe_one("exp/t", QoS::AtLeastOnce);
        sub.disconnect();
    }
    let gone_at = Instant::now();
    let (mut publisher, _) = Raw::connect(port, Login::v5("exp-pub"));
    publisher.publish(message("exp/t", "queued", QoS::AtLeastOnce));
    publisher.disconnect();

    broker.stop(stop);
    // The time passing is the condition: 3 s after the disconnect.
    thread::sleep(Duration::from_secs(3).saturating_sub(gone_at.elapsed()));
    broker.start();

    let (mut sub, connack) = Raw::connect(port, short);
    assert!(
        !connack.session_present,
        "after {stop}: exp-short's session (expiry 2 s) resumed after 3 s [MQTT-3.2.2-3]"
    );
    // A new subscription: anything of the old queue would come first.
    sub.subscribe_one("exp/t", QoS::AtLeastOnce);
    let mut kept = resume(port, long, stop);
    publish_marker(port, "exp/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert!(
        messages.is_empty(),
        "after {stop}: the expired session's queue was delivered: {:?}",
        payloads(&messages)
    );
    let (messages, _) = kept.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["queued"],
        "after {stop}: exp-long's queue"
    );
    sub.disconnect();
    kept.disconnect();
}

/// A queued message whose Message Expiry Interval (2 s) passed while the
/// broker was down is not delivered after the restart [MQTT-3.3.2-5]; one
/// with 60 s is, its interval reduced by the time it waited [MQTT-3.3.2-6].
fn an_expired_message_is_dropped_after_the_restart(stop: Stop) {
    let mut broker = Starling::new("message-expiry", "").started();
    let port = broker.port();
    let login = Login::v5("mexp-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("mexp/t", QoS::AtLeastOnce);
    sub.disconnect();
    let (mut publisher, _) = Raw::connect(port, Login::v5("mexp-pub"));
    let published_at = Instant::now();
    for (payload, expiry) in [("short", 2), ("long", 60)] {
        let mut publish = message("mexp/t", payload, QoS::AtLeastOnce);
        publish.properties.message_expiry_interval = Some(expiry);
        publisher.publish(publish);
    }
    publisher.disconnect();

    broker.stop(stop);
    // The time passing is the condition: 3 s after the publish.
    thread::sleep(Duration::from_secs(3).saturating_sub(published_at.elapsed()));
    broker.start();

    let mut sub = resume(port, login, stop);
    publish_marker(port, "mexp/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["long"],
        "after {stop}: the expired message dropped, the other delivered [MQTT-3.3.2-5]"
    );
    let left = messages[0]
        .properties
        .message_expiry_interval
        .expect("the Message Expiry Interval forwarded [MQTT-3.3.2-6]");
    // It waited at least 3 s: 57 at most, and a second more for a store
    // that keeps whole seconds (the broker rounds up).
    assert!(
        (1..=58).contains(&left),
        "after {stop}: Message Expiry Interval {left}: 60 less at least the 3 s it waited \
         [MQTT-3.3.2-6]"
    );
    sub.disconnect();
}

/// With the default `queue_qos0_messages false`, a QoS 0 message is not
/// queued for an offline session: nothing of it is stored.
#[test]
fn qos0_is_not_queued_without_queue_qos0_messages() {
    let mut broker = Starling::new("qos0", "").started();
    let port = broker.port();
    let login = Login::v5("q0-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("q0/t", QoS::AtLeastOnce);
    sub.disconnect();
    let (mut publisher, _) = Raw::connect(port, Login::v5("q0-pub"));
    publisher.publish(message("q0/t", "at most once", QoS::AtMostOnce));
    publisher.publish(message("q0/t", "at least once", QoS::AtLeastOnce));
    publisher.disconnect();

    broker.restart(Stop::Kill);

    let mut sub = resume(port, login, Stop::Kill);
    publish_marker(port, "q0/t", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(payloads(&messages), ["at least once"]);
    sub.disconnect();
}

/// Issue 17: a retained message at the deepest topic there is (65,535 `/`,
/// allowed by `max_topic_levels 65536`) is stored, restored into the trie at
/// start-up, delivered to `#`, and the broker stops cleanly with it (the
/// trie's drop): it used to overflow the stack, and since it was stored,
/// again at every restart. The depth of the `+` filter that matches it too.
fn a_retained_message_at_the_deepest_topic_survives_restarts_and_shutdown(stop: Stop) {
    let mut broker = Starling::new("deepest", "max_topic_levels 65536").started();
    let port = broker.port();
    let deepest = "/".repeat(65_535);
    let (mut publisher, _) = Raw::connect(port, Login::v5("deep-pub"));
    let code = publisher.publish(retained(&deepest, "deep", QoS::AtLeastOnce));
    assert!(!code.is_error(), "{code}");
    publisher.disconnect();
    let login = Login::v5("deep-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    let mut plus = vec!["+"; 30_000];
    plus.push("#");
    sub.subscribe_one(&plus.join("/"), QoS::AtLeastOnce);
    let first = sub.expect_message("the retained message, for the new subscription");
    assert_eq!(first.topic.as_str().len(), 65_535);
    sub.disconnect();

    broker.restart(stop);

    let (mut all, _) = Raw::connect(port, Login::v5("deep-all"));
    all.subscribe_one("#", QoS::AtLeastOnce);
    let again = all.expect_message("the retained message after the restart");
    assert_eq!(again.topic.as_str(), deepest, "[MQTT-3.3.1-5]");
    assert_eq!(text(&again), "deep");
    all.disconnect();
    // The deep subscription was restored with its session.
    let mut sub = resume(port, login, stop);
    publish_marker(port, &deepest, QoS::AtLeastOnce);
    let (_, marker) = sub.messages_until(b"marker");
    assert_eq!(marker.topic.as_str().len(), 65_535);
    sub.disconnect();
    // And a graceful stop with it all in the tries exits 0.
    broker.stop(Stop::Graceful);
}
