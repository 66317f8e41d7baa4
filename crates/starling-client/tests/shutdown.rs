//! Ending a client: `disconnect`, dropping every handle, and losing the
//! connection without a reconnect policy; the will tells them apart.

mod common;

use std::time::Duration;

use common::*;
use starling_client::{
    Client, ClientOptions, Disconnect, Error, Event, LastWill, PacketType, ProtocolVersion, QoS,
    ReasonCode, ReconnectPolicy,
};

/// A watcher of `will/#` and a way to tell whether a will came: publish a
/// sentinel and see what arrives before it.
async fn wills_before_sentinel(broker: &TestBroker, events: &mut starling_client::Events) -> usize {
    let (sentinel, _e) = Client::connect(broker.options(ProtocolVersion::V3_1_1, "sentinel"))
        .await
        .unwrap();
    sentinel
        .publish("will/sentinel", "end", QoS::AtLeastOnce, false)
        .await
        .unwrap();
    let seen = messages_until(events, "end").await;
    sentinel.disconnect().await.unwrap();
    seen.len() - 1
}

fn with_will(options: ClientOptions) -> ClientOptions {
    options.last_will(LastWill::new("will/gone", "gone", QoS::AtLeastOnce))
}

#[tokio::test]
async fn disconnect_is_clean_and_ends_everything() {
    let broker = TestBroker::start().await;
    for version in ProtocolVersion::ALL {
        let (_w, mut wills) = subscriber(&broker, version, "will-watch", "will/#").await;
        let recorder = Recorder::default();
        let options =
            with_will(broker.options(version, "leaver")).packet_observer(recorder.observer());
        let (client, mut events) = Client::connect(options).await.unwrap();
        let other_handle = client.clone();
        client.disconnect().await.unwrap();
        assert_eq!(
            recorder.count(starling_client::Direction::Sent, PacketType::Disconnect),
            1
        );
        assert!(matches!(
            next_event(&mut events).await,
            Some(Event::Connected { .. })
        ));
        assert!(matches!(
            next_event(&mut events).await,
            Some(Event::Disconnected {
                reason: Error::Closed
            })
        ));
        assert!(next_event(&mut events).await.is_none(), "the stream ends");
        let late = other_handle.publish("t", "x", QoS::AtMostOnce, false).await;
        assert!(matches!(late, Err(Error::Closed)), "{late:?}");
        assert!(other_handle.is_closed());
        // Twice is fine.
        other_handle.disconnect().await.unwrap();
        assert_eq!(
            wills_before_sentinel(&broker, &mut wills).await,
            0,
            "{version}: no will"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn dropping_every_handle_disconnects() {
    let broker = TestBroker::start().await;
    let (_w, mut wills) = subscriber(&broker, ProtocolVersion::V5, "will-watch", "will/#").await;
    let (client, mut events) =
        Client::connect(with_will(broker.options(ProtocolVersion::V5, "dropper")))
            .await
            .unwrap();
    let clone = client.clone();
    drop(client);
    drop(clone);
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Connected { .. })
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Disconnected {
            reason: Error::Closed
        })
    ));
    assert!(next_event(&mut events).await.is_none());
    assert_eq!(wills_before_sentinel(&broker, &mut wills).await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn v5_disconnect_with_will_and_session_expiry() {
    let broker = TestBroker::start().await;
    let (_w, mut wills) = subscriber(&broker, ProtocolVersion::V5, "will-watch", "will/#").await;
    let options = with_will(broker.options(ProtocolVersion::V5, "willing"))
        .session_expiry(Duration::from_secs(30));
    let (client, _events) = Client::connect(options).await.unwrap();
    let mut disconnect = Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL_MESSAGE);
    disconnect.properties.session_expiry_interval = Some(0);
    client.disconnect_with(disconnect).await.unwrap();
    let will = next_message(&mut wills).await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("will/gone", &b"gone"[..])
    );
    assert!(matches!(
        client
            .disconnect_with(Disconnect::new(ReasonCode::GRANTED_QOS_1))
            .await,
        Err(Error::InvalidOption { .. })
    ));
    broker.stop().await;
}

#[tokio::test]
async fn a_lost_connection_without_reconnect_ends_the_client_and_fires_the_will() {
    let broker = TestBroker::start().await;
    let (_w, mut wills) =
        subscriber(&broker, ProtocolVersion::V3_1_1, "will-watch", "will/#").await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V3_1_1).await;
    let options = with_will(ClientOptions::new(&proxy.url()).unwrap())
        .client_id("fragile")
        .reconnect(ReconnectPolicy::Off);
    let (client, mut events) = Client::connect(options).await.unwrap();
    proxy.hold(&[PacketType::PubAck]);
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.publish("t", "x", QoS::AtLeastOnce, false).await }
    });
    eventually("PUBACK held", || proxy.held() == 1).await;
    proxy.cut();
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Connected { .. })
    ));
    assert!(matches!(
        next_event(&mut events).await,
        Some(Event::Disconnected {
            reason: Error::ConnectionClosed
        })
    ));
    assert!(next_event(&mut events).await.is_none());
    let result = pending.await.unwrap();
    assert!(matches!(result, Err(Error::ConnectionLost)), "{result:?}");
    let will = next_message(&mut wills).await;
    assert_eq!(will.payload, "gone".as_bytes());
    broker.stop().await;
}

#[tokio::test]
async fn disconnect_fails_publishes_still_in_flight() {
    let broker = TestBroker::start().await;
    let proxy = Proxy::start(broker.addr, ProtocolVersion::V5).await;
    let options = ClientOptions::new(&proxy.url())
        .unwrap()
        .version(ProtocolVersion::V5)
        .client_id("impatient");
    let (client, _events) = Client::connect(options).await.unwrap();
    proxy.hold(&[PacketType::PubRec]);
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.publish("t", "x", QoS::ExactlyOnce, false).await }
    });
    eventually("PUBREC held", || proxy.held() == 1).await;
    client.disconnect().await.unwrap();
    let result = tokio::time::timeout(WAIT, pending).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::Closed)), "{result:?}");
    broker.stop().await;
}

#[tokio::test]
async fn a_qos0_publish_just_before_disconnect_still_goes_out() {
    let broker = TestBroker::start().await;
    let (_w, mut messages) = subscriber(&broker, ProtocolVersion::V3_1_1, "w", "last/#").await;
    let (client, _events) = Client::connect(broker.options(ProtocolVersion::V3_1_1, "quick"))
        .await
        .unwrap();
    // Joined in this order, the PUBLISH command is sent before the DISCONNECT.
    let (published, disconnected) = tokio::join!(
        client.publish("last/word", "bye", QoS::AtMostOnce, false),
        client.disconnect()
    );
    disconnected.unwrap();
    assert_eq!(published.unwrap().qos, QoS::AtMostOnce);
    assert_eq!(next_message(&mut messages).await.payload, "bye".as_bytes());
    broker.stop().await;
}
