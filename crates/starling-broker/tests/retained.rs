//! Retained messages over real sockets: storing, replacing, clearing, the
//! RETAIN flag on what is sent, Retain Handling, `retain_available = false`,
//! and Message Expiry of retained messages, for 3.1.1 and 5.0 clients.

mod common;

use common::*;
use starling_broker::Config;
use starling_proto::{Packet, QoS, ReasonCode, RetainHandling, TopicName, Will};

fn payloads(received: &[starling_proto::Publish]) -> Vec<String> {
    let mut texts: Vec<String> = received.iter().map(text).collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn a_retained_message_is_stored_and_sent_to_new_subscriptions_with_retain_set() {
    // 5.0: [MQTT-3.3.1-5] stored, [MQTT-3.3.1-9] sent at subscribe, with RETAIN 1
    // (§3.3.1.3) and the subscription's identifier; 3.1.1: [MQTT-3.3.1-5],
    // [MQTT-3.3.1-6], [MQTT-3.3.1-8]. [MQTT-3.8.4-8]: at the lower QoS.
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "store-pub").await;
    publish_flow(
        &mut publisher,
        retained("st/a", "kept", QoS::AtLeastOnce, 1),
    )
    .await;
    publish_flow(
        &mut publisher,
        retained("st/b", "kept too", QoS::ExactlyOnce, 2),
    )
    .await;
    for version in [V3_1_1, V5] {
        let mut sub = connected(&broker, version, &format!("store-{version:?}")).await;
        let id = version.is_v5().then_some(42);
        let codes = subscribe(&mut sub, 1, &[("st/+", opts(QoS::AtLeastOnce))], id).await;
        assert_eq!(codes, vec![ReasonCode::GRANTED_QOS_1]);
        let mut got = drain(&mut sub).await;
        got.sort_by(|a, b| a.topic.as_str().cmp(b.topic.as_str()));
        assert_eq!(payloads(&got), vec!["kept", "kept too"], "{version:?}");
        for p in &got {
            assert!(
                p.retain,
                "{version:?}: RETAIN 1 on a message sent for a new subscription"
            );
            assert_eq!(p.qos(), QoS::AtLeastOnce, "{version:?}");
            if version.is_v5() {
                assert_eq!(sub_ids(p), vec![42]);
            }
        }
    }
    assert_eq!(broker.broker.retained_count(), 2);
    broker.stop().await;
}

#[tokio::test]
async fn a_newer_retained_message_replaces_the_old_one_and_a_non_retained_one_does_not() {
    // [MQTT-3.3.1-5] replace; [MQTT-3.3.1-8] (3.1.1: [MQTT-3.3.1-12]) RETAIN 0
    // neither stores nor replaces; 3.1.1 [MQTT-3.3.1-7]: a QoS 0 one replaces too.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let name = format!("rp/{version:?}");
        let mut publisher = connected(&broker, version, &format!("rp-pub-{version:?}")).await;
        publish_flow(&mut publisher, retained(&name, "one", QoS::AtLeastOnce, 1)).await;
        publish_flow(&mut publisher, retained(&name, "two", QoS::AtMostOnce, 0)).await;
        publish_flow(
            &mut publisher,
            message(&name, "not retained", QoS::AtLeastOnce, 2),
        )
        .await;
        let mut sub = connected(&broker, version, &format!("rp-sub-{version:?}")).await;
        subscribe_one(&mut sub, &name, opts(QoS::AtLeastOnce)).await;
        let got = drain(&mut sub).await;
        assert_eq!(payloads(&got), vec!["two"], "{version:?}");
        assert_eq!(got[0].qos(), QoS::AtMostOnce, "stored with its own QoS");
    }
    broker.stop().await;
}

#[tokio::test]
async fn an_empty_retained_message_clears_the_topic_and_is_forwarded_as_normal() {
    // 5.0 [MQTT-3.3.1-6], [MQTT-3.3.1-7]; 3.1.1 [MQTT-3.3.1-10], [MQTT-3.3.1-11]:
    // existing subscribers get it with RETAIN 0, later ones get nothing.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let name = format!("clr/{version:?}");
        let mut publisher = connected(&broker, version, &format!("clr-pub-{version:?}")).await;
        publish_flow(&mut publisher, retained(&name, "x", QoS::AtLeastOnce, 1)).await;
        let mut existing = connected(&broker, version, &format!("clr-old-{version:?}")).await;
        subscribe_one(&mut existing, &name, opts(QoS::AtLeastOnce)).await;
        assert!(receive(&mut existing).await.retain);

        publish_flow(&mut publisher, retained(&name, "", QoS::AtLeastOnce, 2)).await;
        let got = receive(&mut existing).await;
        assert!(
            got.payload.is_empty() && !got.retain,
            "{version:?}: {got:?}"
        );

        let mut later = connected(&broker, version, &format!("clr-new-{version:?}")).await;
        subscribe_one(&mut later, &name, opts(QoS::AtLeastOnce)).await;
        later.expect_nothing(QUIET).await;
    }
    // An empty retained message where none was stored is not stored either.
    let mut publisher = connected(&broker, V5, "clr-none").await;
    publish_flow(&mut publisher, retained("clr/none", "", QoS::AtMostOnce, 0)).await;
    assert_eq!(broker.broker.retained_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn retain_handling_decides_when_retained_messages_are_sent() {
    // [MQTT-3.3.1-9] 0: at every SUBSCRIBE, a repeated one too ([MQTT-3.8.4-4]);
    // [MQTT-3.3.1-10] 1: only if the subscription is new; [MQTT-3.3.1-11] 2: never.
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "rh-pub").await;
    publish_flow(
        &mut publisher,
        retained("rh/t", "state", QoS::AtLeastOnce, 1),
    )
    .await;
    let mut sub = connected(&broker, V5, "rh-sub").await;
    let with = |rh| {
        let mut o = opts(QoS::AtLeastOnce);
        o.retain_handling = rh;
        o
    };

    for round in 0..2 {
        subscribe_one(&mut sub, "rh/#", with(RetainHandling::SendAtSubscribe)).await;
        let got = receive(&mut sub).await;
        assert!(got.retain && text(&got) == "state", "round {round}");
        sub.expect_nothing(QUIET).await;
    }

    subscribe_one(&mut sub, "rh/+", with(RetainHandling::SendAtSubscribeIfNew)).await;
    assert_eq!(text(&receive(&mut sub).await), "state", "new: sent");
    subscribe_one(&mut sub, "rh/+", with(RetainHandling::SendAtSubscribeIfNew)).await;
    sub.expect_nothing(QUIET).await;
    assert_eq!(
        unsubscribe(&mut sub, 2, &["rh/+"]).await,
        vec![ReasonCode::SUCCESS]
    );
    subscribe_one(&mut sub, "rh/+", with(RetainHandling::SendAtSubscribeIfNew)).await;
    assert_eq!(
        text(&receive(&mut sub).await),
        "state",
        "new again after UNSUBSCRIBE"
    );

    subscribe_one(&mut sub, "rh/t", with(RetainHandling::DoNotSend)).await;
    sub.expect_nothing(QUIET).await;
    broker.stop().await;
}

#[tokio::test]
async fn wildcards_at_the_first_level_do_not_find_retained_dollar_topics() {
    // [MQTT-4.7.2-1], applied to retained messages.
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "rd-pub").await;
    publish_flow(
        &mut publisher,
        retained("$app/x", "system", QoS::AtMostOnce, 0),
    )
    .await;
    publish_flow(
        &mut publisher,
        retained("app/x", "plain", QoS::AtMostOnce, 0),
    )
    .await;
    let mut sub = connected(&broker, V3_1_1, "rd-sub").await;
    subscribe_one(&mut sub, "#", opts(QoS::AtMostOnce)).await;
    assert_eq!(payloads(&drain(&mut sub).await), vec!["plain"]);
    subscribe_one(&mut sub, "+/x", opts(QoS::AtMostOnce)).await;
    assert_eq!(payloads(&drain(&mut sub).await), vec!["plain"]);
    subscribe_one(&mut sub, "$app/#", opts(QoS::AtMostOnce)).await;
    assert_eq!(payloads(&drain(&mut sub).await), vec!["system"]);
    broker.stop().await;
}

fn no_retain() -> Config {
    Config {
        sys_interval: None,
        retain_available: false,
        ..Config::default()
    }
}

#[tokio::test]
async fn without_retain_available_a_v5_client_is_told_and_a_retained_publish_is_refused() {
    // MQTT 5.0 §3.2.2.3.5: CONNACK Retain Available 0; a retained PUBLISH then
    // gets DISCONNECT 0x9A (Retain not supported); [MQTT-3.2.2-14] is the
    // client's side of it.
    let broker = TestBroker::start().await;
    let (_, ack) = connect_with(&broker, connect(V5, "ra-default")).await;
    assert_eq!(
        ack.properties.retain_available, None,
        "absent: retain is available"
    );
    broker.stop().await;

    let broker = TestBroker::with_config(no_retain()).await;
    let mut sub = connected(&broker, V5, "ra-sub").await;
    subscribe_one(&mut sub, "ra/#", opts(QoS::AtLeastOnce)).await;
    let (mut publisher, ack) = connect_with(&broker, connect(V5, "ra-pub")).await;
    assert_eq!(ack.properties.retain_available, Some(false));
    publish_flow(&mut publisher, message("ra/t", "fine", QoS::AtLeastOnce, 1)).await;
    assert_eq!(text(&receive(&mut sub).await), "fine");

    publisher
        .send(Packet::Publish(retained(
            "ra/t",
            "refused",
            QoS::AtLeastOnce,
            2,
        )))
        .await;
    assert_eq!(
        disconnect_reason(&mut publisher).await,
        Some(ReasonCode::RETAIN_NOT_SUPPORTED)
    );
    sub.expect_nothing(QUIET).await;
    assert_eq!(broker.broker.retained_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn without_retain_available_a_3_1_1_retained_publish_closes_the_connection() {
    // 3.1.1 has no Retain Available: as Mosquitto's retain_available documents,
    // a client that sends a retained message is disconnected, and nothing is stored.
    let broker = TestBroker::with_config(no_retain()).await;
    let (mut publisher, ack) = connect_with(&broker, connect(V3_1_1, "ra-old")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    publisher
        .send(Packet::Publish(retained("ra/old", "x", QoS::AtMostOnce, 0)))
        .await;
    assert!(publisher.expect_closed().await.is_empty());
    let mut sub = connected(&broker, V3_1_1, "ra-old-sub").await;
    subscribe_one(&mut sub, "ra/#", opts(QoS::AtMostOnce)).await;
    sub.expect_nothing(QUIET).await;
    assert_eq!(broker.broker.retained_count(), 0);
    broker.stop().await;
}

#[tokio::test]
async fn without_retain_available_a_will_with_retain_is_refused() {
    // [MQTT-3.2.2-13]: CONNACK 0x9A (Retain not supported), then the connection closes.
    let broker = TestBroker::with_config(no_retain()).await;
    let mut c = connect(V5, "ra-will");
    c.will = Some(Will {
        topic: TopicName::from_static("ra/will"),
        payload: "gone".into(),
        qos: QoS::AtMostOnce,
        retain: true,
        properties: Default::default(),
    });
    let (mut client, ack) = connect_with(&broker, c).await;
    assert_eq!(ack.reason_code, ReasonCode::RETAIN_NOT_SUPPORTED);
    assert!(!ack.session_present, "[MQTT-3.2.2-6]");
    assert!(client.expect_closed().await.is_empty(), "[MQTT-3.2.2-7]");
    broker.stop().await;
}

#[tokio::test]
async fn an_expired_retained_message_is_not_sent_and_a_live_one_carries_the_time_left() {
    // [MQTT-3.3.2-5]: past its Message Expiry Interval the retained message is
    // gone (§3.3.1.3); [MQTT-3.3.2-6]: until then it goes out with the interval
    // less the time it has been retained.
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "rex-pub").await;
    let mut short = retained("rex/short", "short", QoS::AtLeastOnce, 1);
    short.properties = expiring(1).into();
    publish_flow(&mut publisher, short).await;
    let mut long = retained("rex/long", "long", QoS::AtLeastOnce, 2);
    long.properties = expiring(30).into();
    publish_flow(&mut publisher, long).await;
    publish_flow(
        &mut publisher,
        retained("rex/forever", "forever", QoS::AtLeastOnce, 3),
    )
    .await;

    let mut sub = connected(&broker, V5, "rex-sub").await;
    subscribe_one(&mut sub, "rex/#", opts(QoS::AtLeastOnce)).await;
    let got = drain(&mut sub).await;
    assert_eq!(payloads(&got), vec!["forever", "long", "short"]);
    for p in &got {
        let expiry = p.properties.message_expiry_interval;
        match text(p).as_str() {
            "short" => assert!(matches!(expiry, Some(1)), "{expiry:?}"),
            "long" => assert!(matches!(expiry, Some(29..=30)), "{expiry:?}"),
            _ => assert_eq!(expiry, None, "no expiry, none forwarded"),
        }
    }

    // Subscribe again until the short-lived message has expired.
    let deadline = Deadline::start("retained message expiry");
    let got = loop {
        subscribe_one(&mut sub, "rex/#", opts(QoS::AtLeastOnce)).await;
        let got = drain(&mut sub).await;
        if got.len() == 2 {
            break got;
        }
        assert_eq!(got.len(), 3);
        deadline.tick().await;
    };
    assert_eq!(payloads(&got), vec!["forever", "long"]);
    let long = got.iter().find(|p| text(p) == "long").unwrap();
    assert!(
        matches!(long.properties.message_expiry_interval, Some(1..=29)),
        "decremented by the time retained: {:?}",
        long.properties.message_expiry_interval
    );
    let mut old = connected(&broker, V3_1_1, "rex-old").await;
    subscribe_one(&mut old, "rex/#", opts(QoS::AtLeastOnce)).await;
    assert_eq!(
        payloads(&drain(&mut old).await),
        vec!["forever", "long"],
        "3.1.1 too"
    );
    broker.stop().await;
}
