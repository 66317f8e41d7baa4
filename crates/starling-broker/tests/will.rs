//! Wills over real sockets: published when a connection ends other than by a
//! normal DISCONNECT (socket closed, keep alive timeout, protocol error, v5
//! DISCONNECT 0x04), with its QoS, retain flag and v5 properties; and the v5
//! Will Delay Interval against resumption and session expiry. Delays are 1 s;
//! lower bounds on when a will arrives have generous slack.

mod common;

use std::time::{Duration, Instant};

use common::*;
use starling_proto::property::WillProperties;
use starling_proto::{
    Connect, Disconnect, MqttString, Packet, ProtocolVersion, QoS, ReasonCode, Will,
};

/// Earliest a 1 s delay may release a will (less slack).
const ONE_SECOND_LESS_SLACK: Duration = Duration::from_millis(900);

/// A CONNECT for `id` with a QoS 1 will of `payload` on `wills/{id}`.
fn with_will(version: ProtocolVersion, id: &str, payload: &'static str) -> Connect {
    let mut c = connect(version, id);
    c.will = Some(will(
        &format!("wills/{id}"),
        payload,
        QoS::AtLeastOnce,
        false,
    ));
    c
}

/// As [`with_will`] for v5, with a Will Delay Interval and a Session Expiry
/// Interval in seconds.
fn delayed(id: &str, payload: &'static str, delay: u32, expiry: u32) -> Connect {
    let mut c = with_will(V5, id, payload);
    c.properties.session_expiry_interval = Some(expiry);
    if let Some(will) = &mut c.will {
        will.properties.will_delay_interval = Some(delay);
    }
    c
}

/// Asserts the next message on the will watcher is `payload`.
async fn expect_will(wills: &mut RawClient, payload: &str) {
    expect_payload(wills, payload).await;
}

/// Proves no will was published: a marker published now on `wills/#` is the
/// next thing the watcher sees.
async fn expect_no_will(broker: &TestBroker, wills: &mut RawClient) {
    let mut marker = accepted(broker, connect(V3_1_1, "marker")).await.0;
    send_message(&mut marker, "wills/marker", "marker", QoS::AtLeastOnce, 1).await;
    expect_payload(wills, "marker").await;
    disconnect(marker).await;
}

#[tokio::test]
async fn will_is_published_when_the_socket_closes_without_disconnect() {
    // [MQTT-3.1.2-8]: the will is published when the connection closes without
    // a normal DISCONNECT.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    for version in ProtocolVersion::ALL {
        let id = format!("vanish{version}");
        let (client, _) = accepted(&broker, with_will(version, &id, "gone")).await;
        drop(client);
        let got = receive(&mut wills).await;
        assert_eq!(got.topic.as_str(), format!("wills/{id}"));
        assert_eq!(text(&got), "gone");
    }
    broker.stop().await;
}

#[tokio::test]
async fn will_is_published_on_keep_alive_timeout() {
    // [MQTT-3.1.2-22]: a silent client is closed "as if the network had
    // failed", so [MQTT-3.1.2-8]: its will is published.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    for version in [V3_1_1, V5] {
        let mut c = with_will(version, &format!("silent{version}"), "timed out");
        c.keep_alive = 1;
        let (mut client, _) = accepted(&broker, c).await;
        expect_disconnect(&mut client, ReasonCode::KEEP_ALIVE_TIMEOUT).await;
        expect_will(&mut wills, "timed out").await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn will_is_published_when_the_broker_closes_on_a_protocol_error() {
    // [MQTT-4.13.1-1]: a Protocol Error or Malformed Packet closes the
    // connection, which is not a normal DISCONNECT: [MQTT-3.1.2-8].
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    for version in [V3_1_1, V5] {
        // [MQTT-3.1.0-2]: a second CONNECT.
        let (mut client, _) =
            accepted(&broker, with_will(version, "twice", "second connect")).await;
        client
            .send(Packet::Connect(Box::new(connect(version, "twice"))))
            .await;
        expect_disconnect(&mut client, ReasonCode::PROTOCOL_ERROR).await;
        expect_will(&mut wills, "second connect").await;

        // [MQTT-3.3.1-4]: a PUBLISH with QoS 3 (0x36, topic "a", id 1).
        let (mut client, _) = accepted(&broker, with_will(version, "qos3", "malformed")).await;
        let mut bytes = vec![0x36, 0x06, 0x00, 0x01, b'a', 0x00, 0x01];
        if version.is_v5() {
            bytes[1] += 1;
            bytes.push(0x00); // no properties
        }
        bytes.push(b'x');
        client.send_bytes(&bytes).await;
        expect_disconnect(&mut client, ReasonCode::MALFORMED_PACKET).await;
        expect_will(&mut wills, "malformed").await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn will_is_not_published_after_a_normal_disconnect() {
    // [MQTT-3.1.2-10], [MQTT-3.14.4-3]: a DISCONNECT with 0x00 (the only 3.x
    // DISCONNECT) removes the will unpublished.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    for version in ProtocolVersion::ALL {
        let (client, _) =
            accepted(&broker, with_will(version, "polite", "should not appear")).await;
        disconnect(client).await;
        // The watcher's session alone is left once the polite one has been
        // dealt with, will and all.
        sessions_become(&broker, 1).await;
        expect_no_will(&broker, &mut wills).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v5_disconnect_with_will_message_publishes_the_will() {
    // MQTT 5.0 §3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) ends
    // the connection and publishes the will [MQTT-3.1.2-8].
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let (mut client, _) = accepted(&broker, with_will(V5, "farewell", "on purpose")).await;
    client
        .send(Packet::Disconnect(Disconnect::new(
            ReasonCode::DISCONNECT_WITH_WILL_MESSAGE,
        )))
        .await;
    assert!(client.expect_closed().await.is_empty());
    expect_will(&mut wills, "on purpose").await;
    broker.stop().await;
}

#[tokio::test]
async fn will_qos_and_retain_are_respected() {
    // The will goes out at its Will QoS (capped by the subscription,
    // [MQTT-3.8.4-8]); [MQTT-3.1.2-15]: Will Retain 1 makes it a retained
    // message, which [MQTT-3.3.1-9] a later subscriber receives (with RETAIN 1,
    // §3.3.1.3); [MQTT-3.1.2-14]: Will Retain 0 does not.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    for version in [V3_1_1, V5] {
        let kept = format!("wills/kept{version}");
        let lost = format!("wills/lost{version}");
        for (name, qos, retain) in [
            (&kept, QoS::AtLeastOnce, true),
            (&lost, QoS::ExactlyOnce, false),
        ] {
            let mut c = connect(version, "testator");
            c.will = Some(will(name, "last words", qos, retain));
            drop(accepted(&broker, c).await.0);
            let got = receive(&mut wills).await;
            assert_eq!(&got.topic.as_str(), name);
            assert_eq!(got.qos(), qos, "{name}: the Will QoS");
            // An established subscription gets RETAIN 0 ([MQTT-3.3.1-12]:
            // Retain As Published is 0 here).
            assert!(!got.retain, "{name}");
        }
        let mut later = accepted(&broker, connect(version, "later")).await.0;
        later.subscribe(1, &kept, QoS::ExactlyOnce).await;
        let got = receive(&mut later).await;
        assert_eq!(text(&got), "last words");
        assert!(got.retain, "[MQTT-3.3.1-9]: sent for a new subscription");
        assert_eq!(got.qos(), QoS::AtLeastOnce);
        // The non-retained will left nothing behind: a marker comes first.
        later.subscribe(2, &lost, QoS::ExactlyOnce).await;
        let mut marker = accepted(&broker, connect(V5, "marker")).await.0;
        send_message(&mut marker, &lost, "marker", QoS::AtLeastOnce, 1).await;
        let got = expect_payload(&mut later, "marker").await;
        assert!(!got.retain);
        expect_payload(&mut wills, "marker").await;
        disconnect(later).await;
        disconnect(marker).await;
    }
    broker.stop().await;
}

/// Connects with `connect`, drops the connection, and asserts that its will
/// `payload` reaches `wills`, no sooner than a second later.
async fn will_after_a_second(
    broker: &TestBroker,
    wills: &mut RawClient,
    connect: Connect,
    payload: &str,
) {
    let (client, _) = accepted(broker, connect).await;
    drop(client);
    let gone = Instant::now();
    expect_will(wills, payload).await;
    let waited = gone.elapsed();
    assert!(
        waited >= ONE_SECOND_LESS_SLACK,
        "published after {waited:?}"
    );
}

#[tokio::test]
async fn v5_will_delay_holds_the_will_back() {
    // [MQTT-3.1.2-8]: with a Will Delay Interval the will is published once the
    // delay has passed (the session, an hour long, is still there).
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let client = delayed("late", "a second later", 1, 3600);
    will_after_a_second(&broker, &mut wills, client, "a second later").await;
    broker.stop().await;
}

#[tokio::test]
async fn v5_will_is_not_published_if_the_session_resumes_within_the_delay() {
    // [MQTT-3.1.3-9]: a new connection to the session before the Will Delay
    // Interval has passed, by reconnecting or by taking the connection over,
    // cancels the will. A control client with the same delay that does not
    // come back shows when the others' wills would have been due.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;

    let (back, _) = accepted(&broker, delayed("back", "back: should not appear", 1, 3600)).await;
    let (mut moved, _) = accepted(
        &broker,
        delayed("moved", "moved: should not appear", 1, 3600),
    )
    .await;
    let (control, _) = accepted(&broker, delayed("control", "control", 1, 3600)).await;
    drop(back);
    drop(control);
    // Taken over by a connection that resumes its session [MQTT-3.1.4-3].
    let (_moved_again, ack) = accepted(&broker, persistent(V5, "moved", 3600)).await;
    assert!(ack.session_present);
    expect_disconnect(&mut moved, ReasonCode::SESSION_TAKEN_OVER).await;
    let (_back_again, ack) = accepted(&broker, persistent(V5, "back", 3600)).await;
    assert!(ack.session_present, "resumed within the delay");

    expect_will(&mut wills, "control").await;
    // The control's will is out, so the others' delays have passed too.
    wills.expect_nothing(QUIET).await;
    expect_no_will(&broker, &mut wills).await;
    broker.stop().await;
}

#[tokio::test]
async fn will_delay_longer_than_the_session_is_cut_short_by_session_end() {
    // [MQTT-3.1.2-8]: the will is published when the delay has passed or the
    // session ends, whichever comes first: here the 1 s session, not the 1 h delay.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let client = delayed("brief", "session over", 3600, 1);
    will_after_a_second(&broker, &mut wills, client, "session over").await;
    broker.stop().await;
}

#[tokio::test]
async fn v5_will_properties_are_forwarded() {
    // [MQTT-3.1.3-10]: the will's User Properties in their order;
    // [MQTT-3.3.2-20]: Content Type, [MQTT-3.3.2-4]: Payload Format Indicator,
    // [MQTT-3.3.2-15]: Response Topic, [MQTT-3.3.2-16]: Correlation Data, all
    // unaltered.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let users = vec![user("b", "1"), user("a", "2"), user("b", "3")];
    let mut c = connect(V5, "detailed");
    c.will = Some(Will {
        properties: WillProperties {
            content_type: Some(MqttString::from_static("text/plain")),
            payload_format_indicator: Some(true),
            response_topic: Some(topic("replies/detailed")),
            correlation_data: Some(bytes::Bytes::from_static(b"\x00\x01")),
            user_properties: users.clone(),
            ..Default::default()
        },
        ..will("wills/detailed", "with properties", QoS::AtLeastOnce, false)
    });
    drop(accepted(&broker, c).await.0);
    let got = receive(&mut wills).await;
    assert_eq!(text(&got), "with properties");
    let p = &got.properties;
    assert_eq!(p.user_properties, users);
    assert_eq!(p.content_type, Some(MqttString::from_static("text/plain")));
    assert_eq!(p.payload_format_indicator, Some(true));
    assert_eq!(p.response_topic, Some(topic("replies/detailed")));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00\x01"[..]));
    broker.stop().await;
}

#[tokio::test]
async fn delayed_will_is_published_when_a_clean_start_ends_the_session() {
    // [MQTT-3.1.2-8]: "or the Session ends": a Clean Start 1 connection for the
    // ClientID discards the session [MQTT-3.1.2-4], so an hour's Will Delay
    // ends at once, whether the old connection was gone or is taken over.
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let (gone, _) = accepted(
        &broker,
        delayed("gone", "gone: session discarded", 3600, 3600),
    )
    .await;
    drop(gone);
    sessions_become(&broker, 2).await; // detached, session kept
    let (_fresh, ack) = accepted(&broker, connect(V5, "gone")).await;
    assert!(!ack.session_present);
    expect_will(&mut wills, "gone: session discarded").await;

    let (mut old, _) = accepted(
        &broker,
        delayed("taken", "taken: session discarded", 3600, 3600),
    )
    .await;
    let (_fresh, ack) = accepted(&broker, connect(V5, "taken")).await;
    assert!(!ack.session_present);
    expect_disconnect(&mut old, ReasonCode::SESSION_TAKEN_OVER).await;
    expect_will(&mut wills, "taken: session discarded").await;
    broker.stop().await;
}

/// A takeover that continues the session is the "new Network Connection" of
/// [MQTT-3.1.3-9] / [MQTT-3.1.2-8]: the old connection's will is not
/// published (Will Delay 0 or not), as Mosquitto does; a takeover that ends
/// the session (old v5 session expiring at once, old 3.1.1 clean session)
/// publishes it.
#[tokio::test]
async fn a_takeover_that_resumes_the_session_publishes_no_will() {
    let broker = TestBroker::start().await;
    let mut wills = watcher(&broker, "watcher", "wills/#").await;
    let resume = |version, id: &str| {
        let mut c = connect(version, id);
        c.clean_start = false;
        if version == V5 {
            c.properties.session_expiry_interval = Some(3600);
        }
        c
    };
    // Kept sessions, taken over by a resume: no will.
    for (version, id) in [(V5, "kept-v5"), (V3_1_1, "kept-311")] {
        let mut old = resume(version, id);
        old.will = with_will(version, id, "kept: no will").will;
        let (mut old, _) = accepted(&broker, old).await;
        let (new, ack) = accepted(&broker, resume(version, id)).await;
        assert!(ack.session_present, "{version}");
        if version == V5 {
            expect_disconnect(&mut old, ReasonCode::SESSION_TAKEN_OVER).await;
        }
        expect_no_will(&broker, &mut wills).await;
        disconnect(new).await;
    }
    // A session that ends with its connection (v5 expiry 0): its will goes.
    let (mut old, _) = accepted(&broker, with_will(V5, "ending", "ending: will")).await;
    let (new, _) = accepted(&broker, resume(V5, "ending")).await;
    expect_disconnect(&mut old, ReasonCode::SESSION_TAKEN_OVER).await;
    expect_will(&mut wills, "ending: will").await;
    disconnect(new).await;
    broker.stop().await;
}
