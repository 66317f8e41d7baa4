//! The seed's practical activity, as `examples/practical_activity.rs` runs it:
//! a will set before connecting, then one message at each QoS, numbered as
//! Paho numbers them (QoS 1 goes out as Message Identifier 2, QoS 2 as 3, as
//! in the activity's capture); a clean DISCONNECT discards the will, a lost
//! connection publishes it.

mod common;

use common::*;
use starling_client::{
    Client, ClientOptions, Direction, LastWill, Packet, ProtocolVersion, QoS, ReconnectPolicy,
};

const TOPIC: &str = "/ufscar/mqtt_activity";

fn activity_options(url: &str, recorder: &Recorder) -> ClientOptions {
    ClientOptions::new(url)
        .unwrap()
        .version(ProtocolVersion::V3_1_1)
        .reconnect(ReconnectPolicy::Off)
        .last_will(LastWill::new(
            TOPIC,
            "Publisher disconnected",
            QoS::AtLeastOnce,
        ))
        .packet_observer(recorder.observer())
}

async fn publish_three(client: &Client) -> Vec<(u16, QoS)> {
    let mut sent = Vec::new();
    for (message, qos) in [
        ("First Message", QoS::AtMostOnce),
        ("Second Message", QoS::AtLeastOnce),
        ("Third Message", QoS::ExactlyOnce),
    ] {
        let published = client.publish(TOPIC, message, qos, false).await.unwrap();
        sent.push((published.message_id.get(), published.qos));
    }
    sent
}

#[tokio::test]
async fn publisher_sends_three_messages_and_leaves_cleanly() {
    let broker = TestBroker::start().await;
    let (_sub, mut events) = subscriber(&broker, ProtocolVersion::V3_1_1, "watcher", TOPIC).await;
    let recorder = Recorder::default();
    let (client, _events) = Client::connect(activity_options(&broker.url(), &recorder))
        .await
        .unwrap();

    // The will travelled in CONNECT, set before connecting.
    {
        let packets = recorder.packets();
        let Some((Direction::Sent, Packet::Connect(connect), _)) = packets.first() else {
            panic!("CONNECT first");
        };
        let will = connect.will.as_ref().expect("a will in CONNECT");
        assert_eq!(will.topic.as_str(), TOPIC);
        assert_eq!(will.payload, "Publisher disconnected".as_bytes());
        assert_eq!(will.qos, QoS::AtLeastOnce);
        assert!(!will.retain);
    }

    let sent = publish_three(&client).await;
    assert_eq!(
        sent,
        [
            (1, QoS::AtMostOnce),
            (2, QoS::AtLeastOnce),
            (3, QoS::ExactlyOnce)
        ]
    );
    client.disconnect().await.unwrap();

    let got = messages_until(&mut events, "Third Message").await;
    let got: Vec<_> = got
        .iter()
        .map(|m| (String::from_utf8(m.payload.to_vec()).unwrap(), m.qos))
        .collect();
    assert_eq!(
        got,
        [
            ("First Message".to_owned(), QoS::AtMostOnce),
            ("Second Message".to_owned(), QoS::AtLeastOnce),
            ("Third Message".to_owned(), QoS::ExactlyOnce),
        ]
    );
    // A clean DISCONNECT: no will. A sentinel shows nothing came in between.
    let (other, _e) = Client::connect(broker.options(ProtocolVersion::V3_1_1, "other"))
        .await
        .unwrap();
    other
        .publish(TOPIC, "sentinel", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    assert_eq!(messages_until(&mut events, "sentinel").await.len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn the_will_is_published_when_the_publisher_is_lost() {
    let broker = TestBroker::start().await;
    let (_sub, mut events) = subscriber(&broker, ProtocolVersion::V3_1_1, "watcher", TOPIC).await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V3_1_1).await;
    let recorder = Recorder::default();
    let (client, _events) = Client::connect(activity_options(&proxy.url(), &recorder))
        .await
        .unwrap();
    publish_three(&client).await;
    messages_until(&mut events, "Third Message").await;
    proxy.cut();
    let will = next_message(&mut events).await;
    assert_eq!(will.topic.as_str(), TOPIC);
    assert_eq!(will.payload, "Publisher disconnected".as_bytes());
    assert_eq!(will.qos, QoS::AtLeastOnce);
    broker.stop().await;
}
