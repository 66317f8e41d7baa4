//! Conversations on top of the harness: connecting with a prepared CONNECT
//! (one that keeps a session or carries a will), subscribing with options and
//! identifiers, both ends of the QoS flows, and DISCONNECT; waits end on a
//! packet, a closed socket or a deadline, never on a bare sleep.

use bytes::Bytes;
use starling_proto::property::{PublishProperties, WillProperties};
use starling_proto::{
    ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode, SubscriptionId, SubscriptionOptions, TopicFilter, Unsubscribe,
    UserProperty, Will,
};

use super::{connect, pid, publish, topic, RawClient, TestBroker, V5};

/// A CONNECT that keeps its session: Clean Session 0 for 3.x; Clean Start 0 and
/// a Session Expiry Interval of `expiry` seconds for v5.
pub fn persistent(version: ProtocolVersion, id: &str, expiry: u32) -> Connect {
    let mut c = connect(version, id);
    c.clean_start = false;
    if version.is_v5() {
        c.properties.session_expiry_interval = Some(expiry);
    }
    c
}

/// A will of `payload` on `name`, with no properties.
pub fn will(name: &str, payload: &'static str, qos: QoS, retain: bool) -> Will {
    Will {
        topic: topic(name),
        payload: Bytes::from_static(payload.as_bytes()),
        qos,
        retain,
        properties: WillProperties::default(),
    }
}

/// Connects with `connect`; returns the client and its CONNACK.
pub async fn connect_with(broker: &TestBroker, connect: Connect) -> (RawClient, ConnAck) {
    let mut client = broker.client(connect.protocol).await;
    let ack = client.handshake(connect).await;
    (client, ack)
}

/// Connects with `connect` and asserts the broker accepted it.
pub async fn accepted(broker: &TestBroker, connect: Connect) -> (RawClient, ConnAck) {
    let (client, ack) = connect_with(broker, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "[MQTT-3.1.4-5]");
    (client, ack)
}

/// A client of `version` connected as `id` with a clean start.
pub async fn connected(broker: &TestBroker, version: ProtocolVersion, id: &str) -> RawClient {
    let (client, ack) = connect_with(broker, connect(version, id)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "CONNACK for {id}");
    client
}

/// A clean v5 client subscribed to `filter` at QoS 2: sees everything published there.
pub async fn watcher(broker: &TestBroker, id: &str, filter: &str) -> RawClient {
    let (mut client, _) = accepted(broker, connect(V5, id)).await;
    client.subscribe(1, filter, QoS::ExactlyOnce).await;
    client
}

/// Options with `qos` and the v5 options at their defaults.
pub fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions::new(qos)
}

/// Subscribes to every `(filter, options)` in one SUBSCRIBE carrying the
/// Subscription Identifier `id` (v5 only) and returns the SUBACK's codes.
pub async fn subscribe(
    client: &mut RawClient,
    packet_id: u16,
    filters: &[(&str, SubscriptionOptions)],
    id: Option<u32>,
) -> Vec<ReasonCode> {
    let mut subscribe = starling_proto::Subscribe {
        packet_id: pid(packet_id),
        filters: filters
            .iter()
            .map(|(f, o)| (TopicFilter::try_from(*f).unwrap(), *o))
            .collect(),
        properties: Default::default(),
    };
    subscribe.properties.subscription_identifier = id.and_then(SubscriptionId::new);
    client.send(Packet::Subscribe(subscribe)).await;
    match client.recv().await {
        Some(Packet::SubAck(ack)) => {
            assert_eq!(ack.packet_id, pid(packet_id), "[MQTT-3.8.4-2]");
            ack.reason_codes
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Subscribes to one filter with `options` and asserts it was granted.
pub async fn subscribe_one(client: &mut RawClient, filter: &str, options: SubscriptionOptions) {
    let codes = subscribe(client, 1, &[(filter, options)], None).await;
    assert_eq!(
        codes,
        vec![ReasonCode(options.qos.as_u8())],
        "SUBACK for {filter}"
    );
}

/// Unsubscribes from `filters` and returns the UNSUBACK's codes (empty for 3.x).
pub async fn unsubscribe(
    client: &mut RawClient,
    packet_id: u16,
    filters: &[&str],
) -> Vec<ReasonCode> {
    client
        .send(Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(packet_id),
            filters: filters
                .iter()
                .map(|f| TopicFilter::try_from(*f).unwrap())
                .collect(),
            properties: Default::default(),
        }))
        .await;
    match client.recv().await {
        Some(Packet::UnsubAck(ack)) => {
            assert_eq!(ack.packet_id, pid(packet_id), "[MQTT-3.10.4-5]");
            ack.reason_codes
        }
        other => panic!("expected UNSUBACK, got {other:?}"),
    }
}

/// A PINGREQ / PINGRESP round trip: every packet sent before it has been
/// handled by the broker when this returns [MQTT-3.12.4-1].
pub async fn sync(client: &mut RawClient) {
    client.send(Packet::PingReq).await;
    match client.recv().await {
        Some(Packet::PingResp) => {}
        other => panic!("expected PINGRESP, got {other:?}"),
    }
}

/// Sends `publish` and completes its QoS flow as the publisher; returns the
/// reason code of the PUBACK or PUBREC (Success for QoS 0, after a PINGREQ
/// round trip that proves the broker has routed it).
pub async fn publish_flow(client: &mut RawClient, publish: Publish) -> ReasonCode {
    let id = publish.packet_id();
    let qos = publish.qos();
    client.send(Packet::Publish(publish)).await;
    let Some(id) = id else {
        sync(client).await;
        return ReasonCode::SUCCESS;
    };
    match (qos, client.recv().await) {
        (QoS::AtLeastOnce, Some(Packet::PubAck(ack))) => {
            assert_eq!(ack.packet_id, id);
            ack.reason_code
        }
        (QoS::ExactlyOnce, Some(Packet::PubRec(rec))) => {
            assert_eq!(rec.packet_id, id);
            if rec.reason_code.is_error() {
                return rec.reason_code;
            }
            client.send(Packet::PubRel(PubRel::new(id))).await;
            match client.recv().await {
                Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, id),
                other => panic!("expected PUBCOMP, got {other:?}"),
            }
            rec.reason_code
        }
        (_, other) => {
            panic!("expected the acknowledgement of a QoS {qos:?} PUBLISH, got {other:?}")
        }
    }
}

/// Publishes `payload` to `name` at `qos` and completes the flow.
pub async fn send_message(
    client: &mut RawClient,
    name: &str,
    payload: &'static str,
    qos: QoS,
    id: u16,
) {
    publish_flow(client, publish(name, payload, qos, id)).await;
}

/// Acknowledges a PUBLISH the broker sent: PUBACK, or PUBREC, PUBREL, PUBCOMP.
/// Only for conversations where nothing else arrives before the PUBREL.
pub async fn ack(client: &mut RawClient, publish: &Publish) {
    let Some(id) = publish.packet_id() else {
        return;
    };
    if publish.qos() == QoS::AtLeastOnce {
        return client.send(Packet::PubAck(PubAck::new(id))).await;
    }
    client.send(Packet::PubRec(PubRec::new(id))).await;
    match client.recv().await {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    client.send(Packet::PubComp(PubComp::new(id))).await;
}

/// The next PUBLISH, acknowledged.
pub async fn receive(client: &mut RawClient) -> Publish {
    let p = client.expect_publish().await;
    ack(client, &p).await;
    p
}

/// Answers a PUBLISH the broker sent with its first acknowledgement: PUBACK
/// for QoS 1, PUBREC for QoS 2. True if a PUBREL is now due.
async fn answer(client: &mut RawClient, publish: &Publish) -> bool {
    match (publish.qos(), publish.packet_id()) {
        (QoS::AtLeastOnce, Some(id)) => {
            client.send(Packet::PubAck(PubAck::new(id))).await;
            false
        }
        (QoS::ExactlyOnce, Some(id)) => {
            client.send(Packet::PubRec(PubRec::new(id))).await;
            true
        }
        _ => false,
    }
}

/// Receives `n` PUBLISHes, acknowledging each as it arrives and completing the
/// QoS 2 flows whose PUBRELs arrive between them; returns them in arrival order.
pub async fn receive_n(client: &mut RawClient, n: usize) -> Vec<Publish> {
    let mut got = Vec::new();
    let mut releasing = 0;
    while got.len() < n || releasing > 0 {
        match client.recv().await {
            Some(Packet::Publish(p)) => {
                if answer(client, &p).await {
                    releasing += 1;
                }
                got.push(p);
            }
            Some(Packet::PubRel(rel)) => {
                client
                    .send(Packet::PubComp(PubComp::new(rel.packet_id)))
                    .await;
                releasing -= 1;
            }
            other => panic!("expected PUBLISH or PUBREL, got {other:?}"),
        }
    }
    assert_eq!(got.len(), n, "more PUBLISHes than expected");
    got
}

/// Receives PUBLISHes, acknowledging each (completing QoS 2 flows as PUBRELs
/// arrive), until no packet arrives for [`QUIET`](super::QUIET).
pub async fn drain(client: &mut RawClient) -> Vec<Publish> {
    let mut got = Vec::new();
    loop {
        let next = tokio::time::timeout(super::QUIET, client.recv()).await;
        match next {
            Ok(Some(Packet::Publish(p))) => {
                answer(client, &p).await;
                got.push(p);
            }
            Ok(Some(Packet::PubRel(rel))) => {
                client
                    .send(Packet::PubComp(PubComp::new(rel.packet_id)))
                    .await;
            }
            Ok(other) => panic!("expected PUBLISH, PUBREL or nothing, got {other:?}"),
            Err(_) => return got,
        }
    }
}

/// The payload as text.
pub fn text(publish: &Publish) -> String {
    String::from_utf8(publish.payload.to_vec()).expect("UTF-8 payload")
}

/// The Subscription Identifiers of a PUBLISH, sorted.
pub fn sub_ids(publish: &Publish) -> Vec<u32> {
    let mut ids: Vec<u32> = publish
        .properties
        .subscription_identifiers
        .iter()
        .map(|id| id.get())
        .collect();
    ids.sort_unstable();
    ids
}

/// Asserts the next PUBLISH carries `payload`, acknowledges it and returns it.
pub async fn expect_payload(client: &mut RawClient, payload: &str) -> Publish {
    let p = receive(client).await;
    assert_eq!(text(&p), payload);
    p
}

/// Asserts that the broker ends the connection for `reason`: a v5 client gets
/// one DISCONNECT with that reason code and then the close; a 3.x client only
/// the close [MQTT-4.13.2-1]. Returns the v5 DISCONNECT.
pub async fn expect_disconnect(client: &mut RawClient, reason: ReasonCode) -> Option<Disconnect> {
    let seen = client.expect_closed().await;
    if !client.version.is_v5() {
        assert!(
            seen.is_empty(),
            "3.x has no server DISCONNECT, got {seen:?}"
        );
        return None;
    }
    match <[Packet; 1]>::try_from(seen) {
        Ok([Packet::Disconnect(d)]) => {
            assert_eq!(d.reason_code, reason);
            Some(d)
        }
        Ok([other]) => panic!("expected DISCONNECT {reason}, got {other:?}"),
        Err(seen) => panic!("expected one DISCONNECT {reason} then the close, got {seen:?}"),
    }
}

/// Waits for the broker to end the connection: returns the reason code of its
/// DISCONNECT, or `None` if it closed without one (3.x).
pub async fn disconnect_reason(client: &mut RawClient) -> Option<ReasonCode> {
    let mut reason = None;
    while let Some(packet) = client.recv().await {
        match packet {
            Packet::Disconnect(d) => {
                assert!(reason.is_none(), "[MQTT-3.14.4-1] a second DISCONNECT");
                reason = Some(d.reason_code);
            }
            other => assert!(
                reason.is_none(),
                "[MQTT-3.14.4-1] {other:?} after DISCONNECT"
            ),
        }
    }
    reason
}

/// Sends a normal DISCONNECT and waits for the broker to close the connection;
/// returns the packets that arrived first (sent before it read the DISCONNECT).
pub async fn send_disconnect(mut client: RawClient) -> Vec<Packet> {
    client.send(Packet::Disconnect(Disconnect::default())).await;
    client.expect_closed().await
}

/// As [`send_disconnect`], and asserts that nothing arrived.
pub async fn disconnect(client: RawClient) {
    let seen = send_disconnect(client).await;
    assert!(
        seen.is_empty(),
        "[MQTT-3.14.4-1] packets after DISCONNECT: {seen:?}"
    );
}

/// A user property.
pub fn user(name: &'static str, value: &'static str) -> UserProperty {
    UserProperty {
        name: starling_proto::MqttString::from_static(name),
        value: starling_proto::MqttString::from_static(value),
    }
}

/// Properties with only a Message Expiry Interval.
pub fn expiring(secs: u32) -> PublishProperties {
    PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    }
}

/// Waits until the broker holds `n` sessions, online or not.
pub async fn sessions_become(broker: &TestBroker, n: usize) {
    super::eventually(|| broker.broker.session_count() == n).await;
}
