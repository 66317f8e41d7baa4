//! Topics of thousands of levels (issue 17): one such SUBSCRIBE or retained
//! PUBLISH used to overflow the broker's stack and abort the process. Now
//! `max_topic_levels` (default 201: what Mosquitto accepts, at most 200 `/`)
//! refuses them where they enter, with the reason code the specification
//! names, and nothing inside the broker recurses on a topic's depth: with the
//! limit raised to the most a topic can have, deep topics are routed,
//! retained, stored, restored and dropped on a test thread's 2 MiB stack.
//!
//! One test per entry point: SUBSCRIBE, UNSUBSCRIBE, PUBLISH, retained
//! PUBLISH, will topic, ACL rules and patterns, restore from the store.

mod common;

use std::sync::Arc;

use common::*;
use starling_broker::storage::MemoryStore;
use starling_broker::Config;
use starling_proto::{
    Packet, ProtocolVersion, QoS, ReasonCode, Subscribe, SubscriptionOptions, TopicFilter,
    Unsubscribe, Will,
};

/// The most levels a topic of 65,535 bytes has: 65,535 `/`.
const DEEPEST: u32 = 65_536;

/// `n` levels of `level`, then `last`.
fn deep(level: &str, n: usize, last: &str) -> String {
    let mut levels = vec![level; n];
    levels.push(last);
    levels.join("/")
}

fn config(max_topic_levels: u32) -> Config {
    Config {
        sys_interval: None,
        max_topic_levels,
        ..Config::default()
    }
}

fn subscribe_packet(filter: &str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        filters: vec![(
            TopicFilter::try_from(filter).unwrap(),
            SubscriptionOptions::new(QoS::AtLeastOnce),
        )],
        properties: Default::default(),
    })
}

/// Sends `packet` on a new connection of `version` and returns what the
/// broker sent before it closed the connection.
async fn refused(broker: &TestBroker, version: ProtocolVersion, packet: Packet) -> Vec<Packet> {
    let mut client = broker.client(version).await;
    client.handshake(connect(version, "deep")).await;
    client.send(packet).await;
    client.expect_closed().await
}

fn disconnect_reason(packets: &[Packet]) -> Option<ReasonCode> {
    match packets {
        [Packet::Disconnect(d)] => Some(d.reason_code),
        _ => None,
    }
}

/// The broker still serves: a new client subscribes, publishes and receives.
async fn still_serves(broker: &TestBroker) {
    let mut client = broker.client(ProtocolVersion::V5).await;
    client
        .handshake(connect(ProtocolVersion::V5, "after"))
        .await;
    client.subscribe(1, "alive", QoS::AtMostOnce).await;
    client
        .send(Packet::Publish(publish("alive", "yes", QoS::AtMostOnce, 0)))
        .await;
    assert_eq!(&client.expect_publish().await.payload[..], b"yes");
}

// [MQTT-3.8.3-1] the filter is a valid MQTT filter, but not one this server
// accepts: MQTT 5.0 §3.14.2.1 0x8F Topic Filter invalid.
#[tokio::test]
async fn a_subscribe_deeper_than_the_limit_ends_its_connection_with_0x8f() {
    let broker = TestBroker::with_config(config(201)).await;
    // 4,000 `/`: 4,001 empty levels, the crash.
    let seen = refused(
        &broker,
        ProtocolVersion::V5,
        subscribe_packet(&"/".repeat(4000)),
    )
    .await;
    assert_eq!(
        disconnect_reason(&seen),
        Some(ReasonCode::TOPIC_FILTER_INVALID)
    );
    // 3.1.1 has no DISCONNECT from the server: the connection is closed.
    let seen = refused(
        &broker,
        ProtocolVersion::V3_1_1,
        subscribe_packet(&"/".repeat(4000)),
    )
    .await;
    assert!(seen.is_empty(), "{seen:?}");
    // What Mosquitto accepts is accepted: 200 `/`, 201 levels.
    let mut client = broker.client(ProtocolVersion::V5).await;
    client
        .handshake(connect(ProtocolVersion::V5, "at-limit"))
        .await;
    let codes = client
        .subscribe(1, &"/".repeat(200), QoS::AtLeastOnce)
        .await;
    assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_1]);
    let codes = client
        .subscribe(2, &deep("+", 199, "#"), QoS::AtLeastOnce)
        .await;
    assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_1]);
    assert_eq!(broker.broker.subscription_count(), 2);
    still_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn an_unsubscribe_deeper_than_the_limit_ends_its_connection_with_0x8f() {
    let broker = TestBroker::with_config(config(201)).await;
    let unsubscribe = Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(1),
        filters: vec![TopicFilter::try_from(deep("a", 300, "#").as_str()).unwrap()],
        properties: Default::default(),
    });
    let seen = refused(&broker, ProtocolVersion::V5, unsubscribe).await;
    assert_eq!(
        disconnect_reason(&seen),
        Some(ReasonCode::TOPIC_FILTER_INVALID)
    );
    still_serves(&broker).await;
    broker.stop().await;
}

// MQTT 5.0 §3.14.2.1 0x90 Topic Name invalid: "The Topic Name is correctly
// formed, but is not accepted by this Client or Server."
#[tokio::test]
async fn a_publish_deeper_than_the_limit_ends_its_connection_with_0x90_and_retains_nothing() {
    let broker = TestBroker::with_config(config(201)).await;
    for (qos, retain) in [
        (QoS::AtMostOnce, false),
        (QoS::AtLeastOnce, false),
        (QoS::ExactlyOnce, true),
    ] {
        // 65,535 `/`, the deepest topic there is.
        let mut deep_publish = message(&"/".repeat(65_535), "x", qos, 7);
        deep_publish.retain = retain;
        let seen = refused(&broker, ProtocolVersion::V5, Packet::Publish(deep_publish)).await;
        assert_eq!(
            disconnect_reason(&seen),
            Some(ReasonCode::TOPIC_NAME_INVALID)
        );
    }
    let seen = refused(
        &broker,
        ProtocolVersion::V3_1_1,
        Packet::Publish(retained(&deep("a", 201, "b"), "x", QoS::AtLeastOnce, 1)),
    )
    .await;
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(broker.broker.retained_count(), 0);
    still_serves(&broker).await;
    broker.stop().await;
}

// MQTT 5.0 §3.2.2.2: CONNACK 0x90 Topic Name invalid, "The Will Topic Name
// is not malformed, but is not accepted by this Server."
#[tokio::test]
async fn a_will_topic_deeper_than_the_limit_is_refused_at_connect() {
    let broker = TestBroker::with_config(config(201)).await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut client = broker.client(version).await;
        let mut with_will = connect(version, "deep-will");
        with_will.will = Some(Will {
            topic: topic(&"/".repeat(4000)),
            payload: "gone".into(),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Default::default(),
        });
        client.send(Packet::Connect(Box::new(with_will))).await;
        let seen = client.expect_closed().await;
        match version {
            ProtocolVersion::V5 => match &seen[..] {
                [Packet::ConnAck(ack)] => {
                    assert_eq!(ack.reason_code, ReasonCode::TOPIC_NAME_INVALID)
                }
                other => panic!("expected CONNACK 0x90, got {other:?}"),
            },
            // 3.x has no return code for it: closed, as Mosquitto does.
            _ => assert!(seen.is_empty(), "{seen:?}"),
        }
    }
    still_serves(&broker).await;
    broker.stop().await;
}

/// With the limit raised to the most a topic can have, the deepest topics
/// go everywhere a topic goes: subscribed, matched by `+` and `#`, retained,
/// delivered, unsubscribed, kept in the store and restored from it, and
/// dropped at shutdown. Any recursion on the depth overflows this test
/// thread's stack.
#[tokio::test]
async fn the_deepest_topics_are_routed_retained_stored_and_restored_without_recursion() {
    let store = Arc::new(MemoryStore::new());
    let broker = TestBroker::with_store(config(DEEPEST), store.clone()).await;
    let deepest = "/".repeat(65_535);
    let deep_filter = deep("+", 20_000, "#");

    let mut publisher = broker.client(ProtocolVersion::V5).await;
    publisher
        .handshake(connect(ProtocolVersion::V5, "pub"))
        .await;
    publisher
        .send(Packet::Publish(retained(
            &deepest,
            "kept",
            QoS::AtLeastOnce,
            1,
        )))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    assert_eq!(broker.broker.retained_count(), 1);

    // A persistent session subscribed deep, and to `#`.
    let mut sub = broker.client(ProtocolVersion::V5).await;
    let mut persistent = connect(ProtocolVersion::V5, "deep-sub");
    persistent.clean_start = false;
    persistent.properties.session_expiry_interval = Some(3600);
    sub.handshake(persistent.clone()).await;
    assert_eq!(
        sub.subscribe(1, &deep_filter, QoS::AtLeastOnce).await,
        vec![ReasonCode::GRANTED_QOS_1]
    );
    // The retained message at the deepest topic, sent for the new subscription.
    let first = sub.expect_publish().await;
    assert_eq!(first.topic.as_str().len(), 65_535);
    assert_eq!(
        sub.subscribe(2, &"/".repeat(40_000), QoS::AtMostOnce).await,
        vec![ReasonCode::GRANTED_QOS_0]
    );
    // Live routing at depth: matched by the `+`.../`#` filter.
    publisher
        .send(Packet::Publish(publish(
            &deep("x", 30_000, "y"),
            "live",
            QoS::AtMostOnce,
            0,
        )))
        .await;
    assert_eq!(&sub.expect_publish().await.payload[..], b"live");
    drop(sub);
    drop(publisher);
    broker.stop().await;

    // Restart on the same store: the deep retained message and subscriptions
    // are restored into the tries.
    let broker = TestBroker::with_store(config(DEEPEST), store.clone()).await;
    assert_eq!(broker.broker.retained_count(), 1);
    let mut sub = broker.client(ProtocolVersion::V5).await;
    let ack = sub.handshake(persistent).await;
    assert!(ack.session_present);
    // The deep retained delivery was never acknowledged: it was in flight,
    // is restored with the session and sent again [MQTT-4.4.0-1].
    let resent = sub.expect_publish().await;
    assert!(resent.dup && resent.topic.as_str().len() == 65_535);
    sub.send(Packet::PubAck(starling_proto::PubAck::new(
        resent.packet_id().unwrap(),
    )))
    .await;
    let mut publisher = broker.client(ProtocolVersion::V5).await;
    publisher
        .handshake(connect(ProtocolVersion::V5, "pub2"))
        .await;
    publisher
        .send(Packet::Publish(publish(
            &deep("z", 25_000, "z"),
            "restored",
            QoS::AtMostOnce,
            0,
        )))
        .await;
    assert_eq!(&sub.expect_publish().await.payload[..], b"restored");
    // Unsubscribing prunes the deep branches; the retained message goes.
    sub.send(Packet::Unsubscribe(Unsubscribe {
        packet_id: pid(3),
        filters: vec![
            TopicFilter::try_from(deep_filter.as_str()).unwrap(),
            TopicFilter::try_from("/".repeat(40_000).as_str()).unwrap(),
        ],
        properties: Default::default(),
    }))
    .await;
    assert!(matches!(sub.recv().await, Some(Packet::UnsubAck(_))));
    publisher
        .send(Packet::Publish(retained(&deepest, "", QoS::AtLeastOnce, 2)))
        .await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubAck(_))));
    assert_eq!(broker.broker.retained_count(), 0);
    assert_eq!(broker.broker.subscription_count(), 0);
    still_serves(&broker).await;
    broker.stop().await;
}

/// ACL rules and patterns of thousands of levels are read and checked
/// without recursion, on every publish and delivery.
#[tokio::test]
async fn acl_rules_and_patterns_of_any_depth_are_checked_without_recursion() {
    let dir = std::env::temp_dir().join(format!("starling-deep-acl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        format!(
            "topic readwrite {}\npattern readwrite {}\ntopic readwrite ok/#\n",
            deep("a", 5_000, "#"),
            deep("%c", 5_000, "+"),
        ),
    )
    .unwrap();
    let broker = TestBroker::with_config(Config {
        acl_file: Some(acl.clone()),
        ..config(DEEPEST)
    })
    .await;
    let mut client = broker.client(ProtocolVersion::V5).await;
    client.handshake(connect(ProtocolVersion::V5, "c")).await;
    client.subscribe(1, "#", QoS::AtMostOnce).await;
    for topic in [
        deep("a", 6_000, "b"),
        deep("c", 5_000, "x"),
        "ok/1".to_owned(),
    ] {
        client
            .send(Packet::Publish(message(&topic, "in", QoS::AtMostOnce, 0)))
            .await;
    }
    // Each is allowed by its deep rule or pattern, and delivered.
    for _ in 0..3 {
        assert_eq!(&client.expect_publish().await.payload[..], b"in");
    }
    // Denied: matches no rule (one level short of the pattern).
    client
        .send(Packet::Publish(message(
            &deep("c", 4_999, "x"),
            "no",
            QoS::AtMostOnce,
            0,
        )))
        .await;
    client.expect_nothing(QUIET).await;
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
