//! The basic conversation over real sockets against a Starling broker:
//! connect, subscribe, publish at each QoS, for MQTT 3.1, 3.1.1 and 5.0; the
//! client identifier; refusals; the broker's limits; incoming Topic Aliases.

mod common;

use std::time::Duration;

use common::*;
use starling_broker::Config;
use starling_client::property::PublishProperties;
use starling_client::{
    Client, ClientOptions, Direction, Error, Event, Message, PacketType, ProtocolVersion, QoS,
    ReasonCode, TopicFilter, TopicName,
};

#[tokio::test]
async fn publish_and_subscribe_at_each_qos_for_every_version() {
    let broker = TestBroker::start().await;
    for version in ProtocolVersion::ALL {
        let (sub, mut messages) = subscriber(&broker, version, "sub", "drone/#").await;
        let (publisher, _events) = Client::connect(broker.options(version, "pub"))
            .await
            .unwrap();
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let payload = format!("{version} at {qos}");
            let published = publisher
                .publish("drone/03/speed", payload.clone(), qos, false)
                .await
                .unwrap();
            assert_eq!(published.qos, qos);
            assert_eq!(published.reason_code, ReasonCode::SUCCESS);
            let got = next_message(&mut messages).await;
            assert_eq!(got.topic.as_str(), "drone/03/speed");
            assert_eq!(got.payload, payload.as_bytes());
            assert_eq!(got.qos, qos, "{version}");
            assert!(!got.retain);
        }
        let unsubscribed = sub
            .unsubscribe(
                vec![TopicFilter::try_from("drone/#").unwrap()],
                Default::default(),
            )
            .await
            .unwrap();
        let expected = if version.is_v5() {
            vec![ReasonCode::SUCCESS]
        } else {
            vec![]
        };
        assert_eq!(unsubscribed.reason_codes, expected);
        publisher.disconnect().await.unwrap();
        sub.disconnect().await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn suback_reports_granted_qos_per_filter() {
    let broker = TestBroker::start().await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let (client, _events) = Client::connect(broker.options(version, "s")).await.unwrap();
        let filters = [
            ("a/+", QoS::AtMostOnce),
            ("b/#", QoS::AtLeastOnce),
            ("c", QoS::ExactlyOnce),
        ]
        .map(|(f, q)| {
            (
                TopicFilter::try_from(f).unwrap(),
                starling_client::SubscriptionOptions::new(q),
            )
        })
        .to_vec();
        let ack = client.subscribe(filters, Default::default()).await.unwrap();
        assert_eq!(
            ack.reason_codes,
            [
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2
            ]
        );
        client.disconnect().await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn retained_messages_and_v5_properties_arrive_intact() {
    let broker = TestBroker::start().await;
    let (publisher, _e) = Client::connect(broker.options(ProtocolVersion::V5, "pub"))
        .await
        .unwrap();
    let properties = PublishProperties {
        content_type: Some("text/plain".try_into().unwrap()),
        response_topic: Some(TopicName::try_from("replies/1").unwrap()),
        correlation_data: Some("req-1".into()),
        ..Default::default()
    };
    let message = Message::new(
        TopicName::try_from("status/x").unwrap(),
        "on",
        QoS::AtLeastOnce,
    )
    .retain(true)
    .properties(properties);
    let published = publisher.publish_with(message).await.unwrap();
    // Nobody subscribed yet: v5 says so, and it is not a failure.
    assert_eq!(published.reason_code, ReasonCode::NO_MATCHING_SUBSCRIBERS);

    let (_sub, mut events) = subscriber(&broker, ProtocolVersion::V5, "late", "status/+").await;
    let got = next_message(&mut events).await;
    assert!(got.retain);
    assert_eq!(got.payload, "on".as_bytes());
    assert_eq!(
        got.properties.content_type.as_ref().map(|c| c.as_str()),
        Some("text/plain")
    );
    assert_eq!(
        got.properties.response_topic.as_ref().map(|t| t.as_str()),
        Some("replies/1")
    );
    assert_eq!(
        got.properties.correlation_data.as_deref(),
        Some(&b"req-1"[..])
    );
    broker.stop().await;
}

#[tokio::test]
async fn v5_broker_assigns_a_client_identifier() {
    let broker = TestBroker::start().await;
    let (client, mut events) = Client::connect(broker.options(ProtocolVersion::V5, ""))
        .await
        .unwrap();
    let assigned = client.assigned_client_id().expect("an assigned identifier");
    assert!(!assigned.is_empty());
    assert_eq!(client.client_id(), assigned);
    match next_event(&mut events).await {
        Some(Event::Connected { connack, .. }) => {
            assert_eq!(
                connack.properties.assigned_client_identifier,
                Some(assigned)
            )
        }
        other => panic!("expected Connected, got {other:?}"),
    }

    // 3.1.1 lets the broker assign one too, but cannot say which.
    let (client, _events) = Client::connect(broker.options(ProtocolVersion::V3_1_1, ""))
        .await
        .unwrap();
    assert_eq!(client.assigned_client_id(), None);
    assert_eq!(client.client_id(), "");
    broker.stop().await;
}

#[tokio::test]
async fn refused_connections_report_the_reason() {
    let broker = TestBroker::start().await;
    // [MQTT-3.1.3-8]: a 3.1.1 empty identifier needs Clean Session.
    let options = broker
        .options(ProtocolVersion::V3_1_1, "")
        .clean_start(false);
    let result = Client::connect(options).await;
    assert!(
        matches!(
            result,
            Err(Error::Refused(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID))
        ),
        "{result:?}"
    );
    // 3.1 needs an identifier whatever the flags.
    let result = Client::connect(broker.options(ProtocolVersion::V3_1, "")).await;
    assert!(matches!(
        result,
        Err(Error::Refused(ReasonCode::CLIENT_IDENTIFIER_NOT_VALID))
    ));
    broker.stop().await;

    let broker = TestBroker::with_config(Config {
        allow_anonymous: false,
        ..Config::default()
    })
    .await;
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let result = Client::connect(broker.options(version, "anon")).await;
        assert!(
            matches!(result, Err(Error::Refused(ReasonCode::NOT_AUTHORIZED))),
            "{version}: {result:?}"
        );
    }
    broker.stop().await;
}

/// `mqtts://`, `ws://` and `wss://` open their transports (the broker's own
/// tests, tls.rs and websocket.rs, connect over them): to a plain MQTT
/// listener, which answers neither a TLS ClientHello nor an HTTP upgrade, the
/// TLS handshake or the WebSocket upgrade fails.
#[tokio::test]
async fn tls_and_websocket_urls_use_their_transports() {
    let broker = TestBroker::start().await;
    let port = broker.addr.port();
    for url in [
        format!("mqtts://127.0.0.1:{port}"),
        format!("ws://127.0.0.1:{port}/mqtt"),
        format!("wss://127.0.0.1:{port}/mqtt"),
    ] {
        let options = ClientOptions::new(&url).unwrap();
        let result = Client::connect(options).await;
        let tls = !url.starts_with("ws:");
        match result {
            Err(Error::Tls(_)) if tls => {}
            Err(Error::WebSocket(_) | Error::Io(_) | Error::ConnectionClosed) if !tls => {}
            other => panic!("{url}: {other:?}"),
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_silent_broker_makes_connect_time_out() {
    let fake = FakeBroker::bind().await;
    let options = ClientOptions::new(&fake.url())
        .unwrap()
        .connect_timeout(Duration::from_millis(200));
    let connect = tokio::spawn(Client::connect(options));
    // Accept and read the CONNECT, then say nothing.
    let (_conn, connect_packet) = fake.accept().await;
    assert_eq!(connect_packet.protocol, ProtocolVersion::V3_1_1);
    let result = tokio::time::timeout(WAIT, connect).await.unwrap().unwrap();
    assert!(
        matches!(result, Err(Error::ConnectTimeout(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn oversized_publish_fails_and_the_connection_stays() {
    let broker = TestBroker::with_config(Config {
        max_packet_size: std::num::NonZeroU32::new(256),
        ..Config::default()
    })
    .await;
    let (client, _events) = Client::connect(broker.options(ProtocolVersion::V5, "big"))
        .await
        .unwrap();
    let result = client
        .publish("t", vec![0u8; 1000], QoS::AtLeastOnce, false)
        .await;
    assert!(
        matches!(result, Err(Error::PacketTooLarge { max: 256, .. })),
        "{result:?}"
    );
    client
        .publish("t", "small", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert!(client.is_connected());
    broker.stop().await;
}

#[tokio::test]
async fn incoming_topic_aliases_are_resolved() {
    let broker = TestBroker::start().await;
    let recorder = Recorder::default();
    let options = broker
        .options(ProtocolVersion::V5, "aliased")
        .topic_alias_maximum(10)
        .packet_observer(recorder.observer());
    let (sub, mut events) = Client::connect(options).await.unwrap();
    sub.subscribe_one("long/topic/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (publisher, _e) = Client::connect(broker.options(ProtocolVersion::V5, "p"))
        .await
        .unwrap();
    for payload in ["1", "2", "3"] {
        publisher
            .publish("long/topic/name", payload, QoS::AtLeastOnce, false)
            .await
            .unwrap();
    }
    for payload in ["1", "2", "3"] {
        let got = next_message(&mut events).await;
        assert_eq!(got.topic.as_str(), "long/topic/name");
        assert_eq!(got.payload, payload.as_bytes());
    }
    // The broker did use the alias: later PUBLISHes came with an empty topic.
    let packets = recorder.packets();
    let empty_topics = packets
        .iter()
        .filter(|(d, p, _)| {
            *d == Direction::Received
                && matches!(p, starling_client::Packet::Publish(p) if p.topic.as_str().is_empty())
        })
        .count();
    assert_eq!(empty_topics, 2);
    broker.stop().await;
}

#[tokio::test]
async fn packet_observer_sees_the_whole_conversation() {
    let broker = TestBroker::start().await;
    let recorder = Recorder::default();
    let options = broker
        .options(ProtocolVersion::V3_1_1, "observed")
        .packet_observer(recorder.observer());
    let (client, _events) = Client::connect(options).await.unwrap();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        client.publish("t", "x", qos, false).await.unwrap();
    }
    client.disconnect().await.unwrap();
    use Direction::{Received as In, Sent as Out};
    assert_eq!(
        recorder.summary(),
        [
            (Out, PacketType::Connect, 0),
            (In, PacketType::ConnAck, 0),
            (Out, PacketType::Publish, 1),
            (Out, PacketType::Publish, 2),
            (In, PacketType::PubAck, 2),
            (Out, PacketType::Publish, 3),
            (In, PacketType::PubRec, 3),
            (Out, PacketType::PubRel, 3),
            (In, PacketType::PubComp, 3),
            (Out, PacketType::Disconnect, 0),
        ]
    );
    broker.stop().await;
}

#[tokio::test]
async fn events_is_a_stream() {
    use futures_core::Stream;
    use std::pin::Pin;

    let broker = TestBroker::start().await;
    let (client, mut events) = Client::connect(broker.options(ProtocolVersion::V5, "s"))
        .await
        .unwrap();
    client.disconnect().await.unwrap();
    let mut kinds = Vec::new();
    while let Some(event) = std::future::poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await {
        kinds.push(match event {
            Event::Connected { .. } => "connected",
            Event::Disconnected { .. } => "disconnected",
            _ => "other",
        });
    }
    assert_eq!(kinds, ["connected", "disconnected"]);
    broker.stop().await;
}
