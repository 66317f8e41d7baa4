//! The broker with a store, in process: what a restart on the same store keeps
//! (sessions, subscriptions, queues, in-flight state, inbound QoS 2 identifiers,
//! retained messages), the store's `$SYS` counters, and how a store that
//! cannot be written is answered. The memory engine stands in for SQLite here
//! (same contract, tested against both in `storage`); crashes of the real
//! binary on SQLite are in `crates/starling/tests/durability.rs`.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::*;
use starling_broker::storage::{Change, MemoryStore, Snapshot, Store, StoreError};
use starling_broker::Config;
use starling_proto::{
    Packet, ProtocolVersion, PubAck, PubComp, PubRel, QoS, ReasonCode, SubscriptionId,
};

fn config() -> Config {
    Config {
        sys_interval: None,
        ..Config::default()
    }
}

/// A store that refuses every batch while `full` is set, as a full disk does.
#[derive(Debug, Default)]
struct FullDisk {
    inner: MemoryStore,
    full: AtomicBool,
}

impl Store for FullDisk {
    fn apply(&self, batch: &[Change]) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Full {
                path: "test".into(),
            });
        }
        self.inner.apply(batch)
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load(&self, now: SystemTime) -> Result<Snapshot, StoreError> {
        self.inner.load(now)
    }
}

#[tokio::test]
async fn a_restart_keeps_sessions_subscriptions_queues_and_retained_messages() {
    // [MQTT-4.1.0-1]: the session state outlives the connection (and here the
    // broker process); [MQTT-3.2.2-2]: Session Present 1 on resume;
    // [MQTT-3.3.4-3]: the Subscription Identifier comes with each message;
    // [MQTT-3.3.1-5]: the retained message is stored.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = TestBroker::with_store(config(), Arc::clone(&store)).await;
    let (mut sub, _) = accepted(&broker, persistent(V5, "keeper", 3600)).await;
    subscribe_with_id(&mut sub, 1, "keep/#", QoS::AtLeastOnce, 7).await;
    disconnect(sub).await;
    let mut publisher = connected(&broker, V5, "pub").await;
    for (i, payload) in ["one", "two", "three"].into_iter().enumerate() {
        send_message(
            &mut publisher,
            "keep/a",
            payload,
            QoS::AtLeastOnce,
            i as u16 + 1,
        )
        .await;
    }
    publish_flow(
        &mut publisher,
        retained("keep/r", "kept", QoS::AtLeastOnce, 9),
    )
    .await;
    disconnect(publisher).await;
    broker.stop().await;

    let broker = TestBroker::with_store(config(), store).await;
    let (mut sub, ack) = accepted(&broker, persistent(V5, "keeper", 3600)).await;
    assert!(ack.session_present, "[MQTT-3.2.2-2]");
    let got = receive_n(&mut sub, 4).await;
    let texts: Vec<String> = got.iter().map(text).collect();
    assert_eq!(texts, ["one", "two", "three", "kept"], "queued, in order");
    for p in &got {
        assert_eq!(
            p.properties.subscription_identifiers,
            vec![SubscriptionId::new(7).unwrap()],
            "[MQTT-3.3.4-3]"
        );
    }
    // The subscription itself survived: a new message reaches it.
    let mut publisher = connected(&broker, V5, "pub").await;
    send_message(&mut publisher, "keep/b", "after", QoS::AtLeastOnce, 1).await;
    assert_eq!(text(&receive(&mut sub).await), "after");
    let mut reader = connected(&broker, V5, "reader").await;
    reader.subscribe(1, "keep/r", QoS::AtLeastOnce).await;
    let r = reader.expect_publish().await;
    assert!(r.retain, "[MQTT-3.3.1-9]");
    assert_eq!(text(&r), "kept");
    broker.stop().await;
}

#[tokio::test]
async fn an_unacknowledged_delivery_is_sent_again_with_dup_after_a_restart() {
    // [MQTT-4.4.0-1]: on resume, unacknowledged PUBLISHes are sent again with
    // their original Packet Identifiers; [MQTT-3.3.1-1]: DUP set.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = TestBroker::with_store(config(), Arc::clone(&store)).await;
    for version in [ProtocolVersion::V3_1_1, V5] {
        let id = format!("unacked-{version}");
        let (mut sub, _) = accepted(&broker, persistent(version, &id, 3600)).await;
        sub.subscribe(1, &format!("{id}/#"), QoS::AtLeastOnce).await;
        let mut publisher = connected(&broker, V5, "pub").await;
        send_message_to(&mut publisher, &format!("{id}/x"), "once", QoS::AtLeastOnce).await;
        let first = sub.expect_publish().await;
        assert!(!first.dup);
        drop(sub); // gone without PUBACK
        disconnect(publisher).await;
        let broker_ref = &broker;
        eventually(|| broker_ref.broker.session_count() >= 1).await;
    }
    broker.stop().await;

    let broker = TestBroker::with_store(config(), store).await;
    for version in [ProtocolVersion::V3_1_1, V5] {
        let id = format!("unacked-{version}");
        let (mut sub, ack) = accepted(&broker, persistent(version, &id, 3600)).await;
        assert!(ack.session_present);
        let again = sub.expect_publish().await;
        assert!(again.dup, "[MQTT-3.3.1-1]");
        assert_eq!(again.packet_id(), Some(pid(1)), "[MQTT-4.4.0-1]");
        assert_eq!(text(&again), "once");
        sub.send(Packet::PubAck(PubAck::new(pid(1)))).await;
        sub.expect_nothing(QUIET).await;
        disconnect(sub).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_qos2_publish_sent_again_after_a_restart_is_delivered_once() {
    // [MQTT-4.3.3-10]: the inbound Packet Identifier awaiting PUBREL is kept
    // across the restart, so the publisher's resent PUBLISH is not a new message.
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = TestBroker::with_store(config(), Arc::clone(&store)).await;
    let (mut sub, _) = accepted(&broker, persistent(V5, "q2-sub", 3600)).await;
    sub.subscribe(1, "q2/#", QoS::ExactlyOnce).await;
    disconnect(sub).await;
    let (mut publisher, _) = accepted(&broker, persistent(V5, "q2-pub", 3600)).await;
    publisher
        .send(Packet::Publish(publish(
            "q2/x",
            "exactly",
            QoS::ExactlyOnce,
            9,
        )))
        .await;
    match publisher.recv().await {
        Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, pid(9)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    drop(publisher); // before PUBREL
    broker.stop().await;

    let broker = TestBroker::with_store(config(), store).await;
    let (mut publisher, ack) = accepted(&broker, persistent(V5, "q2-pub", 3600)).await;
    assert!(ack.session_present);
    let mut again = publish("q2/x", "exactly", QoS::ExactlyOnce, 9);
    again.dup = true;
    publisher.send(Packet::Publish(again)).await;
    match publisher.recv().await {
        Some(Packet::PubRec(rec)) => assert_eq!(rec.packet_id, pid(9)),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publisher.send(Packet::PubRel(PubRel::new(pid(9)))).await;
    match publisher.recv().await {
        Some(Packet::PubComp(PubComp { packet_id, .. })) => assert_eq!(packet_id, pid(9)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    let (mut sub, _) = accepted(&broker, persistent(V5, "q2-sub", 3600)).await;
    let got = receive(&mut sub).await;
    assert_eq!(text(&got), "exactly");
    sub.expect_nothing(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_store_that_cannot_be_written_refuses_qos1_and_2_and_recovers() {
    // The issue's write-failure rule: v5 PUBACK / PUBREC 0x97 Quota exceeded
    // (MQTT 5.0 §3.4.2.1), a 3.1.1 client is disconnected, QoS 0 keeps flowing,
    // and acknowledgements resume once the store takes writes again.
    let disk = Arc::new(FullDisk::default());
    let broker = TestBroker::with_store(config(), disk.clone()).await;
    let mut watcher = watcher(&broker, "watcher", "full/#").await;
    let mut publisher = connected(&broker, V5, "pub").await;
    // Something to write, so the writer finds out.
    let (sub, _) = accepted(&broker, persistent(V5, "offline", 3600)).await;
    disk.full.store(true, Ordering::SeqCst);
    drop(sub);
    let mut sub_flow = connected(&broker, V5, "trigger").await;
    sub_flow.subscribe(1, "trigger", QoS::AtMostOnce).await;
    let deadline = Deadline::start("the store to be reported failing");
    while broker.broker.store_refusal().is_none() {
        deadline.tick().await;
    }
    let code = publish_flow(
        &mut publisher,
        publish("full/a", "refused", QoS::AtLeastOnce, 1),
    )
    .await;
    assert_eq!(code, ReasonCode::QUOTA_EXCEEDED);
    let code = publish_flow(
        &mut publisher,
        publish("full/b", "refused", QoS::ExactlyOnce, 2),
    )
    .await;
    assert_eq!(code, ReasonCode::QUOTA_EXCEEDED);
    send_message(&mut publisher, "full/c", "qos0", QoS::AtMostOnce, 0).await;
    let p = watcher.expect_publish().await;
    assert_eq!(
        text(&p),
        "qos0",
        "QoS 0 still flows; the refused ones were not routed"
    );
    let mut old = connected(&broker, ProtocolVersion::V3_1_1, "old").await;
    old.send(Packet::Publish(publish("full/d", "x", QoS::AtLeastOnce, 1)))
        .await;
    let seen = old.expect_closed().await;
    assert!(
        seen.is_empty(),
        "3.1.1 gets no PUBACK, it is disconnected: {seen:?}"
    );

    disk.full.store(false, Ordering::SeqCst);
    let deadline = Deadline::start("the store to recover");
    while broker.broker.store_refusal().is_some() {
        deadline.tick().await;
    }
    let code = publish_flow(
        &mut publisher,
        publish("full/e", "accepted", QoS::AtLeastOnce, 3),
    )
    .await;
    assert_eq!(code, ReasonCode::SUCCESS);
    assert_eq!(text(&watcher.expect_publish().await), "accepted");
    broker.stop().await;
    // What was pending while the disk was full was written, not dropped.
    let snapshot = disk.load(SystemTime::now()).unwrap();
    assert!(snapshot
        .sessions
        .iter()
        .any(|s| s.session.client_id.as_str() == "offline"));
}

#[tokio::test]
async fn sys_reports_the_store() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let broker = TestBroker::with_store(
        Config {
            sys_interval: Some(Duration::from_secs(1)),
            ..Config::default()
        },
        store,
    )
    .await;
    let (mut sub, _) = accepted(&broker, persistent(V5, "sys-store", 60)).await;
    sub.subscribe(1, "$SYS/broker/store/#", QoS::AtMostOnce)
        .await;
    let mut topics = std::collections::BTreeSet::new();
    while topics.len() < 7 {
        let p = sub.expect_publish().await;
        topics.insert(p.topic.as_str().to_owned());
    }
    for name in [
        "bytes",
        "batches",
        "changes",
        "failures",
        "commit/last",
        "commit/max",
        "failing",
    ] {
        assert!(
            topics.contains(&format!("$SYS/broker/store/{name}")),
            "{name} in {topics:?}"
        );
    }
    broker.stop().await;
}

/// Subscribes to `filter` with Subscription Identifier `id`.
async fn subscribe_with_id(client: &mut RawClient, packet: u16, filter: &str, qos: QoS, id: u32) {
    client
        .send(Packet::Subscribe(starling_proto::Subscribe {
            packet_id: pid(packet),
            filters: vec![(
                starling_proto::TopicFilter::try_from(filter).unwrap(),
                starling_proto::SubscriptionOptions::new(qos),
            )],
            properties: starling_proto::property::SubscribeProperties {
                subscription_identifier: SubscriptionId::new(id),
                ..Default::default()
            },
        }))
        .await;
    match client.recv().await {
        Some(Packet::SubAck(_)) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Publishes `payload` to `name` (a runtime string) and completes the flow.
async fn send_message_to(client: &mut RawClient, name: &str, payload: &'static str, qos: QoS) {
    publish_flow(client, publish(name, payload, qos, 1)).await;
}
