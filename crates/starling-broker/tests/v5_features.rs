//! MQTT 5.0 features over real sockets: forwarded publication properties,
//! Payload Format Indicator, Message Expiry, Topic Aliases both ways, Maximum
//! Packet Size both ways, Response and Problem Information, Receive Maximum
//! towards the broker, and the PUBACK reason codes the broker chooses.

mod common;

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use common::*;
use starling_broker::Config;
use starling_proto::property::PublishProperties;
use starling_proto::{Connect, Packet, PubRel, Publish, QoS, ReasonCode, TopicAlias, TopicName};

fn config(change: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config {
        sys_interval: None,
        ..Config::default()
    };
    change(&mut config);
    config
}

/// A clean v5 CONNECT for `id`, changed by `change`.
fn v5(id: &str, change: impl FnOnce(&mut Connect)) -> Connect {
    let mut c = connect(V5, id);
    change(&mut c);
    c
}

/// Sends QoS 2 message `m{id}` to `name` with packet identifier `id`.
async fn send_qos2(client: &mut RawClient, name: &str, id: u16) {
    let p = message(name, format!("m{id}"), QoS::ExactlyOnce, id);
    client.send(Packet::Publish(p)).await;
}

fn alias(n: u16) -> Option<TopicAlias> {
    TopicAlias::new(n)
}

#[tokio::test]
async fn publication_properties_are_forwarded_unaltered_and_in_order() {
    // [MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-15] Response Topic,
    // [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17] and [MQTT-3.3.2-18] User
    // Properties unaltered and in order, [MQTT-3.3.2-20] Content Type; a 3.1.1
    // subscriber gets the same payload.
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V5, "props-sub").await;
    subscribe_one(&mut sub, "props/t", opts(QoS::AtLeastOnce)).await;
    let mut old = connected(&broker, V3_1_1, "props-old").await;
    subscribe_one(&mut old, "props/t", opts(QoS::AtLeastOnce)).await;

    let properties = PublishProperties {
        payload_format_indicator: Some(true),
        content_type: Some(starling_proto::MqttString::from_static("application/json")),
        response_topic: Some(TopicName::from_static("props/reply")),
        correlation_data: Some(Bytes::from_static(b"\x00\xffcorr")),
        user_properties: vec![
            user("b", "1"),
            user("a", "2"),
            user("b", "3"),
            user("b", "1"),
        ],
        ..Default::default()
    };
    let mut publisher = connected(&broker, V5, "props-pub").await;
    let mut p = retained("props/t", "{\"t\":21.5}", QoS::AtLeastOnce, 1);
    p.properties = properties.clone().into();
    assert_eq!(publish_flow(&mut publisher, p).await, ReasonCode::SUCCESS);

    let got = receive(&mut sub).await;
    assert_eq!(*got.properties, properties);
    assert_eq!(text(&got), "{\"t\":21.5}");
    let got = receive(&mut old).await;
    assert_eq!(text(&got), "{\"t\":21.5}");

    // The retained copy keeps them too.
    let mut later = connected(&broker, V5, "props-later").await;
    subscribe_one(&mut later, "props/#", opts(QoS::AtLeastOnce)).await;
    let got = receive(&mut later).await;
    assert!(got.retain);
    assert_eq!(*got.properties, properties);
    broker.stop().await;
}

#[tokio::test]
async fn a_payload_that_is_not_the_utf8_it_claims_to_be_is_refused() {
    // MQTT 5.0 §3.3.2.3.2: Payload Format Indicator 1 with a payload that is not
    // UTF-8 gets PUBACK / PUBREC 0x99 (Payload format invalid) and goes nowhere.
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V5, "pfi-sub").await;
    subscribe_one(&mut sub, "pfi/#", opts(QoS::AtLeastOnce)).await;
    let mut publisher = connected(&broker, V5, "pfi-pub").await;
    let bad = Bytes::from_static(b"\xff\xfe not UTF-8");
    for (qos, id) in [
        (QoS::AtMostOnce, 0),
        (QoS::AtLeastOnce, 1),
        (QoS::ExactlyOnce, 2),
    ] {
        let mut p = message("pfi/t", bad.clone(), qos, id);
        p.properties.payload_format_indicator = Some(true);
        let reason = publish_flow(&mut publisher, p).await;
        if qos != QoS::AtMostOnce {
            assert_eq!(reason, ReasonCode::PAYLOAD_FORMAT_INVALID, "QoS {qos}");
        }
    }
    sub.expect_nothing(QUIET).await;

    // Unspecified bytes (indicator 0) are not checked.
    let mut p = message("pfi/t", bad.clone(), QoS::AtLeastOnce, 3);
    p.properties.payload_format_indicator = Some(false);
    assert_eq!(publish_flow(&mut publisher, p).await, ReasonCode::SUCCESS);
    assert_eq!(receive(&mut sub).await.payload, bad);
    broker.stop().await;
}

#[tokio::test]
async fn message_expiry_is_forwarded_decremented_and_expired_queued_messages_are_dropped() {
    // [MQTT-3.3.2-6]: the interval less the time waited; [MQTT-3.3.2-5]: a copy
    // whose interval passed before delivery started is deleted, for a v5 and a
    // 3.1.1 subscriber that were offline.
    let broker = TestBroker::start().await;
    let persistent = |id: &str| {
        v5(id, |c| {
            c.properties.session_expiry_interval = Some(300);
        })
    };
    let (mut away, _) = connect_with(&broker, persistent("mx-away")).await;
    subscribe_one(&mut away, "mx/#", opts(QoS::AtLeastOnce)).await;
    send_disconnect(away).await;
    let mut old_connect = connect(V3_1_1, "mx-old");
    old_connect.clean_start = false;
    let (mut old, _) = connect_with(&broker, old_connect.clone()).await;
    subscribe_one(&mut old, "mx/#", opts(QoS::AtLeastOnce)).await;
    send_disconnect(old).await;
    let mut online = connected(&broker, V5, "mx-online").await;
    subscribe_one(&mut online, "mx/#", opts(QoS::AtLeastOnce)).await;

    let mut publisher = connected(&broker, V5, "mx-pub").await;
    // The short-lived message is also retained, so that its expiry can be
    // watched through the broker.
    let mut short = retained("mx/short", "short", QoS::AtLeastOnce, 1);
    short.properties = expiring(1).into();
    publish_flow(&mut publisher, short).await;
    let mut long = message("mx/long", "long", QoS::AtLeastOnce, 2);
    long.properties = expiring(60).into();
    publish_flow(&mut publisher, long).await;
    publish_flow(
        &mut publisher,
        message("mx/none", "none", QoS::AtLeastOnce, 3),
    )
    .await;

    let got = drain(&mut online).await;
    let expiries: Vec<(String, Option<u32>)> = got
        .iter()
        .map(|p| (text(p), p.properties.message_expiry_interval))
        .collect();
    assert_eq!(
        expiries,
        vec![
            ("short".to_owned(), Some(1)),
            ("long".to_owned(), Some(60)),
            ("none".to_owned(), None)
        ],
        "forwarded at once: nothing to subtract yet"
    );

    let deadline = Deadline::start("the retained copy to expire");
    loop {
        subscribe_one(&mut online, "mx/short", opts(QoS::AtLeastOnce)).await;
        if drain(&mut online).await.is_empty() {
            break;
        }
        deadline.tick().await;
    }

    let (mut away, ack) = connect_with(
        &broker,
        v5("mx-away", |c| {
            c.clean_start = false;
            c.properties.session_expiry_interval = Some(300);
        }),
    )
    .await;
    assert!(ack.session_present);
    let got = drain(&mut away).await;
    let texts: Vec<String> = got.iter().map(text).collect();
    assert_eq!(texts, vec!["long", "none"], "[MQTT-3.3.2-5]");
    let left = got[0].properties.message_expiry_interval;
    assert!(matches!(left, Some(1..=59)), "[MQTT-3.3.2-6]: {left:?}");

    let (mut old, ack) = connect_with(&broker, old_connect).await;
    assert!(ack.session_present);
    let texts: Vec<String> = drain(&mut old).await.iter().map(text).collect();
    assert_eq!(
        texts,
        vec!["long", "none"],
        "3.1.1 subscriber: [MQTT-3.3.2-5]"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_topic_alias_set_by_the_client_stands_for_its_topic() {
    // [MQTT-3.3.2-12]: aliases 1..=Topic Alias Maximum are accepted; an alias is
    // set by a PUBLISH with a topic, used by one with an empty topic, and may be
    // remapped (MQTT 5.0 §3.3.2.3.4).
    let broker = TestBroker::start().await;
    let mut sub = connected(&broker, V5, "tai-sub").await;
    subscribe_one(&mut sub, "tai/#", opts(QoS::AtLeastOnce)).await;
    let (mut publisher, ack) = connect_with(&broker, connect(V5, "tai-pub")).await;
    assert_eq!(ack.properties.topic_alias_maximum, Some(10));

    let sends = [
        ("tai/x", 10, "set"),
        ("", 10, "use"),
        ("tai/y", 10, "remap"),
        ("", 10, "use again"),
    ];
    for (i, (name, n, payload)) in sends.into_iter().enumerate() {
        let mut p = Publish::new(TopicName::empty(), payload);
        if !name.is_empty() {
            p.topic = TopicName::try_from(name).unwrap();
        }
        p.delivery = starling_proto::Delivery::AtLeastOnce(pid(i as u16 + 1));
        p.properties.topic_alias = alias(n);
        assert_eq!(publish_flow(&mut publisher, p).await, ReasonCode::SUCCESS);
    }
    let got: Vec<(String, String)> = drain(&mut sub)
        .await
        .iter()
        .map(|p| (p.topic.to_string(), text(p)))
        .collect();
    let want = [
        ("tai/x", "set"),
        ("tai/x", "use"),
        ("tai/y", "remap"),
        ("tai/y", "use again"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(t, p)| (t.to_string(), p.to_string()))
        .collect();
    assert_eq!(got, want);
    broker.stop().await;
}

#[tokio::test]
async fn a_bad_topic_alias_from_the_client_ends_the_connection() {
    // MQTT 5.0 §3.3.2.3.4: an alias above the Topic Alias Maximum is 0x94 (Topic
    // Alias invalid); an empty topic with an alias never set is a Protocol Error
    // 0x82; [MQTT-3.3.2-7]: mappings do not outlive the connection.
    let broker = TestBroker::start().await;
    let mut client = connected(&broker, V5, "tab-1").await;
    let mut p = message("tab/t", "x", QoS::AtMostOnce, 0);
    p.properties.topic_alias = alias(11);
    client.send(Packet::Publish(p)).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::TOPIC_ALIAS_INVALID)
    );

    let mut client = connected(&broker, V5, "tab-2").await;
    let mut p = Publish::new(TopicName::empty(), "x");
    p.properties.topic_alias = alias(4);
    client.send(Packet::Publish(p.clone())).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );

    let mut client = connected(&broker, V5, "tab-3").await;
    let mut set = message("tab/t", "x", QoS::AtMostOnce, 0);
    set.properties.topic_alias = alias(4);
    publish_flow(&mut client, set).await;
    send_disconnect(client).await;
    let mut client = connected(&broker, V5, "tab-3").await;
    client.send(Packet::Publish(p)).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::PROTOCOL_ERROR)
    );
    broker.stop().await;

    // With max_topic_alias 0 the broker announces none ([MQTT-3.2.2-18]) and
    // any alias is invalid.
    let broker = TestBroker::with_config(config(|c| c.max_topic_alias = 0)).await;
    let (mut client, ack) = connect_with(&broker, connect(V5, "tab-0")).await;
    assert_eq!(ack.properties.topic_alias_maximum, None);
    let mut p = message("tab/t", "x", QoS::AtMostOnce, 0);
    p.properties.topic_alias = alias(1);
    client.send(Packet::Publish(p)).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::TOPIC_ALIAS_INVALID)
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_broker_uses_topic_aliases_up_to_the_clients_maximum() {
    // [MQTT-3.3.2-11], [MQTT-3.1.2-26]: never an alias above the client's Topic
    // Alias Maximum; the second PUBLISH on a topic uses the alias with an empty
    // topic. [MQTT-3.1.2-27]: none for a client without a maximum.
    // [MQTT-3.3.2-7]: a new connection starts with no aliases.
    let broker = TestBroker::start().await;
    let aliased = |clean| {
        v5("tao-sub", |c| {
            c.clean_start = clean;
            c.properties.topic_alias_maximum = Some(2);
            c.properties.session_expiry_interval = Some(60);
        })
    };
    let (mut sub, _) = connect_with(&broker, aliased(true)).await;
    subscribe_one(&mut sub, "tao/#", opts(QoS::AtLeastOnce)).await;
    let mut plain = connected(&broker, V5, "tao-plain").await;
    subscribe_one(&mut plain, "tao/#", opts(QoS::AtLeastOnce)).await;
    let mut publisher = connected(&broker, V5, "tao-pub").await;
    let names = [
        "tao/a", "tao/b", "tao/c", "tao/a", "tao/b", "tao/c", "tao/a",
    ];
    for (i, name) in names.iter().enumerate() {
        publish_flow(
            &mut publisher,
            message(name, *name, QoS::AtLeastOnce, i as u16 + 1),
        )
        .await;
    }
    let got = drain(&mut sub).await;
    let mut map: std::collections::HashMap<u16, String> = Default::default();
    let mut seen = Vec::new();
    for p in &got {
        let topic = match p.properties.topic_alias {
            Some(a) => {
                assert!(a.get() <= 2, "alias {} above the client's maximum", a.get());
                if !p.topic.as_str().is_empty() {
                    map.insert(a.get(), p.topic.to_string());
                }
                map.get(&a.get()).cloned().expect("alias set before use")
            }
            None => p.topic.to_string(),
        };
        assert_eq!(topic, text(p), "the topic the alias stands for");
        seen.push((
            p.topic.as_str().is_empty(),
            p.properties.topic_alias.map(|a| a.get()),
        ));
    }
    assert_eq!(
        seen,
        vec![
            (false, Some(1)),
            (false, Some(2)),
            (false, None),
            (true, Some(1)),
            (true, Some(2)),
            (false, None),
            (true, Some(1)),
        ]
    );
    for p in drain(&mut plain).await {
        assert_eq!(p.properties.topic_alias, None, "[MQTT-3.1.2-27]");
        assert_eq!(p.topic.to_string(), text(&p));
    }

    send_disconnect(sub).await;
    let (mut sub, ack) = connect_with(&broker, aliased(false)).await;
    assert!(ack.session_present);
    publish_flow(
        &mut publisher,
        message("tao/a", "tao/a", QoS::AtLeastOnce, 9),
    )
    .await;
    let got = receive(&mut sub).await;
    assert_eq!(
        got.topic.as_str(),
        "tao/a",
        "[MQTT-3.3.2-7]: the topic, not a stale alias"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_message_too_large_for_one_client_is_dropped_for_that_client_only() {
    // [MQTT-3.1.2-24], [MQTT-3.1.2-25]: not sent, and handled as if sent: the
    // QoS 1 message does not hold the client's one-message window.
    let broker = TestBroker::start().await;
    let (mut small, _) = connect_with(
        &broker,
        v5("mps-small", |c| {
            c.properties.maximum_packet_size = NonZeroU32::new(64);
            c.properties.receive_maximum = NonZeroU16::new(1);
        }),
    )
    .await;
    subscribe_one(&mut small, "mps/t", opts(QoS::AtLeastOnce)).await;
    let mut large = connected(&broker, V5, "mps-large").await;
    subscribe_one(&mut large, "mps/t", opts(QoS::AtLeastOnce)).await;

    let mut publisher = connected(&broker, V5, "mps-pub").await;
    let big = "x".repeat(100);
    publish_flow(
        &mut publisher,
        message("mps/t", big.clone(), QoS::AtLeastOnce, 1),
    )
    .await;
    publish_flow(
        &mut publisher,
        message("mps/t", "small", QoS::AtLeastOnce, 2),
    )
    .await;
    let got: Vec<String> = drain(&mut large).await.iter().map(text).collect();
    assert_eq!(got, vec![big, "small".to_owned()]);
    let got = drain(&mut small).await;
    let texts: Vec<String> = got.iter().map(text).collect();
    assert_eq!(texts, vec!["small"]);
    broker.stop().await;
}

#[tokio::test]
async fn a_new_topic_alias_never_pushes_a_packet_over_the_clients_maximum_size() {
    // [MQTT-3.1.2-24]: the Topic Alias the broker adds counts towards the size.
    let broker = TestBroker::start().await;
    let max = 64u32;
    let (mut sub, _) = connect_with(
        &broker,
        v5("mpa-sub", |c| {
            c.properties.maximum_packet_size = NonZeroU32::new(max);
            c.properties.topic_alias_maximum = Some(5);
        }),
    )
    .await;
    subscribe_one(&mut sub, "mpa/t", opts(QoS::AtMostOnce)).await;
    // A payload that makes the PUBLISH exactly the maximum without an alias.
    let bare = |len: usize| Packet::Publish(message("mpa/t", "y".repeat(len), QoS::AtMostOnce, 0));
    let len = (0..max as usize)
        .find(|&n| bare(n).encoded_len(V5) == max as usize)
        .unwrap();
    let mut publisher = connected(&broker, V5, "mpa-pub").await;
    publish_flow(
        &mut publisher,
        message("mpa/t", "y".repeat(len), QoS::AtMostOnce, 0),
    )
    .await;
    publish_flow(
        &mut publisher,
        message("mpa/t", "after", QoS::AtMostOnce, 0),
    )
    .await;
    let got = drain(&mut sub).await;
    for p in &got {
        let size = Packet::Publish(p.clone()).encoded_len(V5);
        assert!(
            size <= max as usize,
            "a {size}-byte PUBLISH to a client with maximum {max}"
        );
    }
    let lens: Vec<usize> = got.iter().map(|p| p.payload.len()).collect();
    assert_eq!(lens, vec![len, 5], "both fit, without an alias if need be");
    broker.stop().await;
}

#[tokio::test]
async fn the_brokers_maximum_packet_size_is_announced_and_enforced() {
    // MQTT 5.0 §3.2.2.3.6: CONNACK Maximum Packet Size; a larger packet is
    // answered with DISCONNECT 0x95 (Packet too large); [MQTT-3.2.2-15] is the
    // client's side of it. A 3.1.1 client is disconnected without DISCONNECT.
    let max = 128u32;
    let broker =
        TestBroker::with_config(config(|c| c.max_packet_size = NonZeroU32::new(max))).await;
    let mut sub = connected(&broker, V5, "bmp-sub").await;
    subscribe_one(&mut sub, "bmp/t", opts(QoS::AtMostOnce)).await;
    let sized = |len: usize| message("bmp/t", "z".repeat(len), QoS::AtMostOnce, 0);
    let fits = (0..max as usize)
        .find(|&n| Packet::Publish(sized(n)).encoded_len(V5) == max as usize)
        .unwrap();
    for version in [V5, V3_1_1] {
        let (mut client, ack) = connect_with(&broker, connect(version, "bmp-pub")).await;
        if version.is_v5() {
            assert_eq!(ack.properties.maximum_packet_size, NonZeroU32::new(max));
        }
        // 3.1.1 has no property length byte: one more byte of payload fits.
        let fits = fits + usize::from(!version.is_v5());
        assert_eq!(
            Packet::Publish(sized(fits)).encoded_len(version),
            max as usize
        );
        publish_flow(&mut client, sized(fits)).await;
        assert_eq!(
            sub.expect_publish().await.payload.len(),
            fits,
            "exactly the maximum is fine"
        );
        client.send(Packet::Publish(sized(fits + 1))).await;
        let reason = disconnect_reason(&mut client).await;
        if version.is_v5() {
            assert_eq!(reason, Some(ReasonCode::PACKET_TOO_LARGE));
        } else {
            assert_eq!(reason, None);
        }
        sub.expect_nothing(QUIET).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn response_information_is_returned_only_when_requested() {
    // MQTT 5.0 §3.1.2.11.6 / §3.2.2.3.15; [MQTT-3.1.2-28]: not when the request is 0.
    let broker = TestBroker::start().await;
    let (_, ack) = connect_with(
        &broker,
        v5("ri-yes", |c| {
            c.properties.request_response_information = Some(true)
        }),
    )
    .await;
    let info = ack
        .properties
        .response_information
        .clone()
        .expect("Response Information");
    assert!(!info.is_empty());
    let (_, ack) = connect_with(
        &broker,
        v5("ri-no", |c| {
            c.properties.request_response_information = Some(false)
        }),
    )
    .await;
    assert_eq!(ack.properties.response_information, None, "[MQTT-3.1.2-28]");
    let (_, ack) = connect_with(&broker, connect(V5, "ri-absent")).await;
    assert_eq!(ack.properties.response_information, None);
    broker.stop().await;
}

#[tokio::test]
async fn request_problem_information_decides_whether_a_refusal_carries_a_reason_string() {
    // [MQTT-3.1.2-29]: with Request Problem Information 0 no Reason String (nor
    // User Property) on a PUBACK; by default the refusal explains itself.
    let broker =
        TestBroker::with_config(config(|c| c.message_size_limit = NonZeroU32::new(4))).await;
    for problem_info in [None, Some(true), Some(false)] {
        let id = format!("rpi-{problem_info:?}");
        let mut client = connect_with(
            &broker,
            v5(&id, |c| {
                c.properties.request_problem_information = problem_info
            }),
        )
        .await
        .0;
        client
            .send(Packet::Publish(message(
                "rpi/t",
                "too long",
                QoS::AtLeastOnce,
                1,
            )))
            .await;
        let ack = match client.recv().await {
            Some(Packet::PubAck(ack)) => ack,
            other => panic!("expected PUBACK, got {other:?}"),
        };
        assert_eq!(ack.reason_code, ReasonCode::QUOTA_EXCEEDED);
        if problem_info == Some(false) {
            assert!(
                ack.properties.is_empty(),
                "{problem_info:?}: {:?}",
                ack.properties
            );
        } else {
            assert!(ack.properties.reason_string.is_some(), "{problem_info:?}");
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn more_unreleased_qos2_messages_than_the_receive_maximum_end_the_connection() {
    // MQTT 5.0 §3.3.4: more unreleased QoS 2 PUBLISHes than the broker's Receive
    // Maximum is DISCONNECT 0x93; [MQTT-3.3.4-7] is the client's side of it.
    let broker = TestBroker::with_config(config(|c| c.max_inflight_messages = 2)).await;
    let mut sub = connected(&broker, V5, "rm-sub").await;
    subscribe_one(&mut sub, "rm/t", opts(QoS::AtMostOnce)).await;
    let (mut client, ack) = connect_with(&broker, connect(V5, "rm-pub")).await;
    assert_eq!(ack.properties.receive_maximum, NonZeroU16::new(2));
    for id in 1..=2 {
        send_qos2(&mut client, "rm/t", id).await;
        assert!(matches!(client.recv().await, Some(Packet::PubRec(r)) if r.packet_id == pid(id)));
    }
    // Releasing one makes room for one more.
    client.send(Packet::PubRel(PubRel::new(pid(1)))).await;
    assert!(matches!(client.recv().await, Some(Packet::PubComp(c)) if c.packet_id == pid(1)));
    send_qos2(&mut client, "rm/t", 3).await;
    assert!(matches!(client.recv().await, Some(Packet::PubRec(r)) if r.packet_id == pid(3)));
    send_qos2(&mut client, "rm/t", 4).await;
    assert_eq!(
        disconnect_reason(&mut client).await,
        Some(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED)
    );
    let texts: Vec<String> = drain(&mut sub).await.iter().map(text).collect();
    assert_eq!(texts, vec!["m1", "m2", "m3"]);
    broker.stop().await;
}

#[tokio::test]
async fn a_resent_unreleased_qos2_message_is_not_counted_again_against_the_receive_maximum() {
    // [MQTT-4.3.3-10]: until PUBREL, a PUBLISH with the same Packet Identifier is
    // answered with PUBREC and not delivered again; [MQTT-4.4.0-1]: the client
    // resends it when it resumes the session (its PUBREC was lost).
    let broker = TestBroker::with_config(config(|c| c.max_inflight_messages = 2)).await;
    let mut sub = connected(&broker, V5, "rmd-sub").await;
    subscribe_one(&mut sub, "rmd/t", opts(QoS::AtMostOnce)).await;
    let session = |clean| {
        v5("rmd-pub", |c| {
            c.clean_start = clean;
            c.properties.session_expiry_interval = Some(60);
        })
    };
    let (mut client, _) = connect_with(&broker, session(true)).await;
    for id in 1..=2 {
        send_qos2(&mut client, "rmd/t", id).await;
        assert!(matches!(client.recv().await, Some(Packet::PubRec(_))));
    }
    drop(client);
    let (mut client, ack) = connect_with(&broker, session(false)).await;
    assert!(ack.session_present);
    for id in 1..=2 {
        let mut again = message("rmd/t", format!("m{id}"), QoS::ExactlyOnce, id);
        again.dup = true;
        client.send(Packet::Publish(again)).await;
        match client.recv().await {
            Some(Packet::PubRec(r)) => assert_eq!(r.packet_id, pid(id)),
            other => panic!("expected PUBREC for the resent {id}, got {other:?}"),
        }
        client.send(Packet::PubRel(PubRel::new(pid(id)))).await;
        assert!(matches!(client.recv().await, Some(Packet::PubComp(_))));
    }
    let texts: Vec<String> = drain(&mut sub).await.iter().map(text).collect();
    assert_eq!(texts, vec!["m1", "m2"], "each once");
    broker.stop().await;
}

#[tokio::test]
async fn a_message_nobody_subscribed_to_is_acknowledged_with_no_matching_subscribers() {
    // MQTT 5.0 §3.4.2.1 and §3.5.2.1: 0x10 (No matching subscribers).
    let broker = TestBroker::start().await;
    let mut publisher = connected(&broker, V5, "nms-pub").await;
    let reason = publish_flow(&mut publisher, message("nms/t", "x", QoS::AtLeastOnce, 1)).await;
    assert_eq!(reason, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    let reason = publish_flow(&mut publisher, message("nms/t", "x", QoS::ExactlyOnce, 2)).await;
    assert_eq!(reason, ReasonCode::NO_MATCHING_SUBSCRIBERS);
    let mut sub = connected(&broker, V5, "nms-sub").await;
    subscribe_one(&mut sub, "nms/+", opts(QoS::AtMostOnce)).await;
    let reason = publish_flow(&mut publisher, message("nms/t", "x", QoS::AtLeastOnce, 3)).await;
    assert_eq!(reason, ReasonCode::SUCCESS);
    broker.stop().await;
}

#[tokio::test]
async fn a_payload_over_the_message_size_limit_is_refused_and_not_delivered() {
    // message_size_limit (Mosquitto): v5 PUBACK / PUBREC 0x97 (Quota exceeded);
    // 3.1.1 cannot be told, its PUBACK is plain and the message is dropped.
    let broker =
        TestBroker::with_config(config(|c| c.message_size_limit = NonZeroU32::new(16))).await;
    let mut sub = connected(&broker, V5, "msl-sub").await;
    subscribe_one(&mut sub, "msl/t", opts(QoS::AtLeastOnce)).await;
    let limit = "a".repeat(16);
    let over = "a".repeat(17);
    for version in [V5, V3_1_1] {
        let mut publisher = connected(&broker, version, "msl-pub").await;
        let v5_reason = |code| {
            if version.is_v5() {
                code
            } else {
                ReasonCode::SUCCESS
            }
        };
        for (qos, id) in [
            (QoS::AtMostOnce, 0),
            (QoS::AtLeastOnce, 1),
            (QoS::ExactlyOnce, 2),
        ] {
            let reason =
                publish_flow(&mut publisher, message("msl/t", over.clone(), qos, id)).await;
            if qos != QoS::AtMostOnce {
                assert_eq!(
                    reason,
                    v5_reason(ReasonCode::QUOTA_EXCEEDED),
                    "{version:?} QoS {qos}"
                );
            }
        }
        sub.expect_nothing(QUIET).await;
        let reason = publish_flow(
            &mut publisher,
            message("msl/t", limit.clone(), QoS::AtLeastOnce, 3),
        )
        .await;
        assert_eq!(reason, ReasonCode::SUCCESS);
        assert_eq!(text(&receive(&mut sub).await), limit);
        send_disconnect(publisher).await;
    }
    broker.stop().await;
}
