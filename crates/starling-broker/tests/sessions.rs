//! Sessions over real sockets: Session Present, what survives a disconnect
//! (subscriptions, queued and in-flight messages, pending PUBRELs), when a
//! session ends (v5 Session Expiry, 3.x Clean Session and
//! `persistent_client_expiration`), and the queue limits. Expiry intervals are
//! 1 or 2 s, waited for by polling with a deadline.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use starling_broker::stats::Stats;
use starling_broker::Config;
use starling_proto::{
    Disconnect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, QoS, ReasonCode,
};

/// Earliest a 1 s expiry may end a session (less slack).
const ONE_SECOND_LESS_SLACK: Duration = Duration::from_millis(900);

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config {
        sys_interval: None,
        ..Config::default()
    };
    edit(&mut config);
    config
}

/// Connects with a session that outlives the connection (v5: for an hour),
/// asserts Session Present is `present`, subscribes to `filter` at QoS 2 if
/// given.
async fn session(
    broker: &TestBroker,
    version: ProtocolVersion,
    id: &str,
    present: bool,
    filter: Option<&str>,
) -> RawClient {
    let (mut client, ack) = accepted(broker, persistent(version, id, 3600)).await;
    // MQTT 3.1's CONNACK has no Session Present flag: always 0 there.
    assert_eq!(
        ack.session_present,
        present && version != V3_1,
        "{version} {id}: Session Present"
    );
    if let Some(filter) = filter {
        client.subscribe(1, filter, QoS::ExactlyOnce).await;
    }
    client
}

async fn publisher(broker: &TestBroker) -> RawClient {
    accepted(broker, connect(V5, "publisher")).await.0
}

/// A DISCONNECT that sets the Session Expiry Interval.
fn disconnect_with_expiry(secs: u32) -> Packet {
    let mut d = Disconnect::default();
    d.properties.session_expiry_interval = Some(secs);
    Packet::Disconnect(d)
}

#[tokio::test]
async fn clean_start_discards_the_session() {
    // [MQTT-3.1.2-4]: Clean Start 1 discards any existing session;
    // [MQTT-3.2.2-2]: Session Present is then 0.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for version in ProtocolVersion::ALL {
        let id = format!("clean{version}");
        let old = format!("clean/{version}/old");
        let marker = format!("clean/{version}/marker");
        disconnect(session(&broker, version, &id, false, Some(&old)).await).await;
        let (mut client, ack) = accepted(&broker, connect(version, &id)).await;
        assert!(!ack.session_present, "{version}");
        client.subscribe(2, &marker, QoS::AtLeastOnce).await;
        // The old subscription went with the old session: the marker comes first.
        send_message(&mut publisher, &old, "old", QoS::AtLeastOnce, 1).await;
        send_message(&mut publisher, &marker, "marker", QoS::AtLeastOnce, 2).await;
        expect_payload(&mut client, "marker").await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn resumed_session_is_present_and_keeps_its_subscriptions() {
    // [MQTT-3.2.2-3]: Session Present 0 with no stored session, 1 with one;
    // [MQTT-3.1.2-5]: communication resumes from the stored session, whose
    // subscriptions are part of it (MQTT 5.0 §4.1).
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for version in ProtocolVersion::ALL {
        let id = format!("keep{version}");
        let name = format!("keep/{version}");
        disconnect(session(&broker, version, &id, false, Some(&name)).await).await;
        let mut client = session(&broker, version, &id, true, None).await;
        send_message(
            &mut publisher,
            &name,
            "still subscribed",
            QoS::AtLeastOnce,
            1,
        )
        .await;
        expect_payload(&mut client, "still subscribed").await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v5_session_without_expiry_ends_with_the_connection() {
    // MQTT 5.0 §3.1.2.11.2 (no statement id): an absent or 0 Session Expiry
    // Interval ends the session when the connection closes, whether by
    // DISCONNECT or not; [MQTT-3.2.2-3]: so Session Present is 0 next time.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for (expiry, by_disconnect) in [(None, true), (Some(0), true), (None, false)] {
        let mut c = connect(V5, "brief");
        c.clean_start = false;
        c.properties.session_expiry_interval = expiry;
        let (mut client, ack) = accepted(&broker, c).await;
        assert!(!ack.session_present);
        client.subscribe(1, "brief/old", QoS::AtLeastOnce).await;
        if by_disconnect {
            disconnect(client).await;
        } else {
            drop(client);
        }
        sessions_become(&broker, 1).await; // the publisher's
        let (mut client, ack) = accepted(&broker, persistent(V5, "brief", 0)).await;
        assert!(!ack.session_present, "expiry {expiry:?}");
        client.subscribe(2, "brief/marker", QoS::AtLeastOnce).await;
        send_message(&mut publisher, "brief/old", "old", QoS::AtLeastOnce, 1).await;
        send_message(
            &mut publisher,
            "brief/marker",
            "marker",
            QoS::AtLeastOnce,
            2,
        )
        .await;
        expect_payload(&mut client, "marker").await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v5_session_expiry_keeps_the_session_for_its_interval() {
    // [MQTT-3.1.2-23]: with a Session Expiry Interval above 0 the session
    // outlives the connection; [MQTT-4.1.0-2]: and is discarded once the
    // interval has passed.
    let broker = TestBroker::start().await;
    let (mut client, _) = accepted(&broker, persistent(V5, "short", 1)).await;
    client.subscribe(1, "short/#", QoS::AtLeastOnce).await;
    drop(client);
    // Back within the second: the session is there.
    let (client, ack) = accepted(&broker, persistent(V5, "short", 1)).await;
    assert!(ack.session_present, "[MQTT-3.2.2-3]");
    disconnect(client).await;
    let left = Instant::now();
    sessions_become(&broker, 0).await;
    let lasted = left.elapsed();
    assert!(
        lasted >= ONE_SECOND_LESS_SLACK,
        "session ended after {lasted:?}"
    );
    let (_, ack) = accepted(&broker, persistent(V5, "short", 1)).await;
    assert!(!ack.session_present, "[MQTT-3.2.2-3]: a new session");
    broker.stop().await;
}

#[tokio::test]
async fn persistent_client_expiration_ends_idle_v3_sessions() {
    // 3.x sessions have no expiry of their own; MQTT 3.1.1 §4.1 lets the server
    // discard them by administrative policy, here Mosquitto's
    // persistent_client_expiration of 1 s. [MQTT-3.2.2-3]: afterwards Session
    // Present is 0.
    let broker = TestBroker::with_config(config(|c| {
        c.persistent_client_expiration = Some(Duration::from_secs(1));
    }))
    .await;
    for version in [V3_1, V3_1_1] {
        let id = format!("idle{version}");
        disconnect(session(&broker, version, &id, false, Some("idle/#")).await).await;
        let left = Instant::now();
        sessions_become(&broker, 0).await;
        let lasted = left.elapsed();
        assert!(
            lasted >= ONE_SECOND_LESS_SLACK,
            "{version}: ended after {lasted:?}"
        );
        disconnect(session(&broker, version, &id, false, None).await).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_can_shorten_or_lengthen_the_session_expiry() {
    // MQTT 5.0 §3.14.2.2.2 (no statement id): a Session Expiry Interval on
    // DISCONNECT replaces the one from CONNECT; [MQTT-3.1.2-23].
    let broker = TestBroker::start().await;

    // Shortened to 0: the session ends with the connection.
    let (mut client, _) = accepted(&broker, persistent(V5, "shorten", 3600)).await;
    client.send(disconnect_with_expiry(0)).await;
    assert!(client.expect_closed().await.is_empty());
    sessions_become(&broker, 0).await;
    let (client, ack) = accepted(&broker, persistent(V5, "shorten", 3600)).await;
    assert!(!ack.session_present);
    disconnect(client).await; // ends in an hour

    // Lengthened from 1 s to an hour, next to a control session of 2 s: were
    // the 1 s still in force, this session would end first.
    let (mut client, _) = accepted(&broker, persistent(V5, "lengthen", 1)).await;
    let (control, _) = accepted(&broker, persistent(V5, "control", 2)).await;
    client.send(disconnect_with_expiry(3600)).await;
    assert!(client.expect_closed().await.is_empty());
    disconnect(control).await;
    sessions_become(&broker, 2).await; // "shorten" and one of the other two
    let (_, ack) = accepted(&broker, persistent(V5, "lengthen", 3600)).await;
    assert!(ack.session_present, "the DISCONNECT's expiry was used");
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_setting_an_expiry_after_zero_is_a_protocol_error() {
    // MQTT 5.0 §3.14.2.2.2 (no statement id): a non-zero Session Expiry
    // Interval on DISCONNECT after 0 at CONNECT is a Protocol Error: the broker
    // answers DISCONNECT 0x82 [MQTT-4.13.1-1], without a Session Expiry
    // Interval of its own [MQTT-3.14.2-2], and the session still ends.
    let broker = TestBroker::start().await;
    let (mut client, _) = accepted(&broker, persistent(V5, "sneaky", 0)).await;
    client.send(disconnect_with_expiry(60)).await;
    let answer = expect_disconnect(&mut client, ReasonCode::PROTOCOL_ERROR)
        .await
        .unwrap();
    assert_eq!(answer.properties.session_expiry_interval, None);
    sessions_become(&broker, 0).await;
    let (_, ack) = accepted(&broker, persistent(V5, "sneaky", 0)).await;
    assert!(!ack.session_present);
    broker.stop().await;
}

#[tokio::test]
async fn offline_qos1_and_qos2_messages_arrive_on_resume_in_order() {
    // [MQTT-4.5.0-1]: messages for a stored session's subscriptions are added to
    // it while it is offline (3.1.1 [MQTT-3.1.2-5]); [MQTT-4.6.0-5],
    // [MQTT-4.6.0-6]: and delivered in the order they were published.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    const PAYLOADS: [&str; 10] = ["m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9"];
    for version in ProtocolVersion::ALL {
        let id = format!("away{version}");
        let name = format!("away/{version}");
        disconnect(session(&broker, version, &id, false, Some(&name)).await).await;
        for (i, payload) in PAYLOADS.into_iter().enumerate() {
            let qos = if i % 2 == 0 {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            send_message(&mut publisher, &name, payload, qos, i as u16 + 1).await;
        }
        let mut client = session(&broker, version, &id, true, None).await;
        let got = receive_n(&mut client, PAYLOADS.len()).await;
        let got: Vec<(String, QoS)> = got.iter().map(|p| (text(p), p.qos())).collect();
        let sent: Vec<(String, QoS)> = PAYLOADS
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                (
                    payload.to_owned(),
                    if i % 2 == 0 {
                        QoS::AtLeastOnce
                    } else {
                        QoS::ExactlyOnce
                    },
                )
            })
            .collect();
        assert_eq!(got, sent, "{version}");
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn qos0_messages_are_queued_offline_only_when_configured() {
    // MQTT 5.0 §4.1 (no statement id): QoS 0 messages are an optional part of
    // an offline session; 3.1.1 [MQTT-3.1.2-5] requires only QoS 1 and 2.
    // Mosquitto's queue_qos0_messages turns them on.
    for queue_qos0 in [false, true] {
        let broker = TestBroker::with_config(config(|c| c.queue_qos0_messages = queue_qos0)).await;
        let mut publisher = publisher(&broker).await;
        for version in [V3_1_1, V5] {
            let id = format!("zero{version}");
            disconnect(session(&broker, version, &id, false, Some("zero/#")).await).await;
            send_message(&mut publisher, "zero/a", "qos 0", QoS::AtMostOnce, 0).await;
            send_message(&mut publisher, "zero/a", "qos 1", QoS::AtLeastOnce, 1).await;
            let mut client = session(&broker, version, &id, true, None).await;
            if queue_qos0 {
                let got = expect_payload(&mut client, "qos 0").await;
                assert_eq!(got.qos(), QoS::AtMostOnce);
            }
            expect_payload(&mut client, "qos 1").await;
            disconnect(client).await;
        }
        broker.stop().await;
    }
}

#[tokio::test]
async fn max_queued_messages_drops_the_overflow_and_counts_it() {
    // Mosquitto's max_queued_messages (MQTT 5.0 §4.1 leaves limits to the
    // server): with room for 3, the 4th and 5th messages are dropped and
    // counted in publish_dropped; the first 3 arrive on resume.
    let broker = TestBroker::with_config(config(|c| c.max_queued_messages = Some(3))).await;
    let mut publisher = publisher(&broker).await;
    disconnect(session(&broker, V3_1_1, "full", false, Some("full/#")).await).await;
    for (i, payload) in ["q1", "q2", "q3", "q4", "q5"].into_iter().enumerate() {
        send_message(
            &mut publisher,
            "full/a",
            payload,
            QoS::AtLeastOnce,
            i as u16 + 1,
        )
        .await;
    }
    // Each PUBACK came after its message was routed.
    assert_eq!(Stats::get(&broker.broker.stats.publish_dropped), 2);
    let mut client = session(&broker, V3_1_1, "full", true, None).await;
    for payload in ["q1", "q2", "q3"] {
        expect_payload(&mut client, payload).await;
    }
    send_message(&mut publisher, "full/a", "after", QoS::AtLeastOnce, 6).await;
    expect_payload(&mut client, "after").await;
    broker.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_slows_its_publishers_instead_of_losing_messages() {
    // Issue 7: a 3.1.1 publisher has no flow control but TCP's. With room for
    // 100 queued messages, 1,000 QoS 1 messages sent in one burst to an online
    // subscriber that takes its time all arrive, in order, none dropped: the
    // publisher is read more slowly while the subscriber has a backlog,
    // instead of being acknowledged at full speed into a full queue.
    let broker = TestBroker::with_config(config(|c| c.max_queued_messages = Some(100))).await;
    let mut subscriber = accepted(&broker, connect(V3_1_1, "slow")).await.0;
    subscriber.subscribe(1, "slow/#", QoS::AtLeastOnce).await;
    let mut publisher = accepted(&broker, connect(V3_1_1, "fast")).await.0;
    const COUNT: u16 = 1000;
    let mut burst = BytesMut::new();
    for i in 1..=COUNT {
        Packet::Publish(message("slow/a", i.to_string(), QoS::AtLeastOnce, i))
            .encode(V3_1_1, &mut burst)
            .unwrap();
    }
    let publishing = tokio::spawn(async move {
        publisher.send_bytes(&burst).await;
        for _ in 1..=COUNT {
            match publisher.recv().await {
                Some(Packet::PubAck(_)) => {}
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
        disconnect(publisher).await;
    });
    for i in 1..=COUNT {
        let got = subscriber.expect_publish().await;
        assert_eq!(got.payload, i.to_string().as_bytes(), "in order, none lost");
        let id = got.delivery.packet_id().expect("QoS 1");
        subscriber.send(Packet::PubAck(PubAck::new(id))).await;
        if i % 20 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    publishing.await.unwrap();
    assert_eq!(Stats::get(&broker.broker.stats.publish_dropped), 0);
    disconnect(subscriber).await;
    broker.stop().await;
}

#[tokio::test]
async fn unacknowledged_publishes_are_resent_with_dup_and_their_packet_ids() {
    // [MQTT-4.4.0-1]: on resume the broker resends unacknowledged PUBLISHes with
    // their original Packet Identifiers and [MQTT-3.3.1-1] with DUP 1, in the
    // order first sent (what [MQTT-4.6.0-1] asks of a client); once
    // acknowledged they are not sent again.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for version in [V3_1, V3_1_1, V5] {
        let id = format!("flaky{version}");
        let name = format!("flaky/{version}");
        let mut client = session(&broker, version, &id, false, Some(&name)).await;
        send_message(&mut publisher, &name, "one", QoS::AtLeastOnce, 1).await;
        send_message(&mut publisher, &name, "two", QoS::ExactlyOnce, 2).await;
        let first: Vec<_> = [client.expect_publish().await, client.expect_publish().await].into();
        for p in &first {
            assert!(!p.dup, "[MQTT-3.3.1-3] a first delivery has DUP 0");
        }
        drop(client); // no PUBACK, no PUBREC

        let mut client = session(&broker, version, &id, true, None).await;
        for original in &first {
            let again = client.expect_publish().await;
            assert_eq!(text(&again), text(original), "{version}: order");
            assert_eq!(again.packet_id(), original.packet_id(), "{version}");
            assert_eq!(again.qos(), original.qos(), "{version}");
            assert!(again.dup, "{version}: DUP on the resend");
            ack(&mut client, &again).await;
        }
        disconnect(client).await;

        let mut client = session(&broker, version, &id, true, None).await;
        send_message(&mut publisher, &name, "marker", QoS::AtLeastOnce, 3).await;
        expect_payload(&mut client, "marker").await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn pending_pubrel_is_resent_on_resume_and_pubcomp_completes_it() {
    // [MQTT-4.4.0-1]: an unacknowledged PUBREL is resent on resume with its
    // Packet Identifier; [MQTT-4.3.3-6]: the PUBLISH is not sent again once
    // PUBREL was; [MQTT-4.3.3-5]: PUBCOMP ends the flow.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for version in [V3_1_1, V5] {
        let id = format!("half{version}");
        let name = format!("half/{version}");
        let mut client = session(&broker, version, &id, false, Some(&name)).await;
        send_message(&mut publisher, &name, "exactly once", QoS::ExactlyOnce, 1).await;
        let got = client.expect_publish().await;
        let packet_id = got.packet_id().unwrap();
        client.send(Packet::PubRec(PubRec::new(packet_id))).await;
        match client.recv().await {
            Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, packet_id),
            other => panic!("expected PUBREL, got {other:?}"),
        }
        drop(client); // no PUBCOMP

        let mut client = session(&broker, version, &id, true, None).await;
        match client.recv().await {
            Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, packet_id, "{version}"),
            other => panic!("{version}: expected the PUBREL again, got {other:?}"),
        }
        client.send(Packet::PubComp(PubComp::new(packet_id))).await;
        sync(&mut client).await;
        disconnect(client).await;

        let mut client = session(&broker, version, &id, true, None).await;
        send_message(&mut publisher, &name, "marker", QoS::AtLeastOnce, 2).await;
        expect_payload(&mut client, "marker").await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn takeover_with_clean_start_0_keeps_the_session() {
    // [MQTT-3.1.4-3]: the old connection is closed (v5: 0x8E); [MQTT-3.1.2-5],
    // [MQTT-3.2.2-3]: the new one resumes the session it held, unacknowledged
    // deliveries included.
    let broker = TestBroker::start().await;
    let mut publisher = publisher(&broker).await;
    for version in [V3_1_1, V5] {
        let id = format!("moved{version}");
        let name = format!("moved/{version}");
        let mut old = session(&broker, version, &id, false, Some(&name)).await;
        send_message(&mut publisher, &name, "unacknowledged", QoS::AtLeastOnce, 1).await;
        let pending = old.expect_publish().await;
        let mut new = session(&broker, version, &id, true, None).await;
        expect_disconnect(&mut old, ReasonCode::SESSION_TAKEN_OVER).await;
        // [MQTT-4.4.0-1]: what the old connection left unacknowledged.
        let again = expect_payload(&mut new, "unacknowledged").await;
        assert_eq!(again.packet_id(), pending.packet_id(), "{version}");
        assert!(again.dup, "{version}");
        send_message(&mut publisher, &name, "here now", QoS::AtLeastOnce, 2).await;
        expect_payload(&mut new, "here now").await;
        disconnect(new).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn inbound_qos2_state_survives_a_reconnect() {
    // MQTT 5.0 §4.1: QoS 2 messages received from the client and not completely
    // acknowledged are session state, so [MQTT-4.3.3-10] holds across a
    // reconnect: a PUBLISH the client resends [MQTT-4.4.0-1] is acknowledged
    // and not delivered again, and [MQTT-4.3.3-11]: its PUBREL is answered with
    // PUBCOMP 0x00 (the identifier is known).
    let broker = TestBroker::start().await;
    let mut sub = watcher(&broker, "sub", "twice/#").await;
    for version in [V3_1_1, V5] {
        for resend_publish in [true, false] {
            let first = publish("twice/a", "once only", QoS::ExactlyOnce, 9);
            let mut client = session(&broker, version, "resender", false, None).await;
            client.send(Packet::Publish(first.clone())).await;
            match client.recv().await {
                Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, pid(9)),
                other => panic!("expected PUBREC, got {other:?}"),
            }
            expect_payload(&mut sub, "once only").await;
            drop(client); // before PUBREL

            let mut client = session(&broker, version, "resender", true, None).await;
            if resend_publish {
                let mut again = first;
                again.dup = true;
                client.send(Packet::Publish(again)).await;
                match client.recv().await {
                    Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, pid(9)),
                    other => panic!("expected PUBREC, got {other:?}"),
                }
            }
            client.send(Packet::PubRel(PubRel::new(pid(9)))).await;
            match client.recv().await {
                Some(Packet::PubComp(comp)) => {
                    assert_eq!(comp.packet_id, pid(9));
                    assert_eq!(comp.reason_code, ReasonCode::SUCCESS, "{version}");
                }
                other => panic!("expected PUBCOMP, got {other:?}"),
            }
            send_message(&mut client, "twice/a", "marker", QoS::AtLeastOnce, 1).await;
            expect_payload(&mut sub, "marker").await;
            // End the session for the next round.
            client.send(Packet::Disconnect(Disconnect::default())).await;
            client.expect_closed().await;
            let (client, _) = accepted(&broker, connect(version, "resender")).await;
            disconnect(client).await;
        }
    }
    broker.stop().await;
}
