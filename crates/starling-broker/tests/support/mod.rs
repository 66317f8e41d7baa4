//! Helpers for the routing, retained, MQTT 5 feature, shared subscription and
//! `$SYS` tests, on top of the harness in `common`: connecting with a prepared
//! CONNECT, subscribing with options and identifiers, acknowledged publishing,
//! and waits that end on a packet or a deadline, never on a bare sleep.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use starling_proto::property::PublishProperties;
use starling_proto::{
    ConnAck, Connect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    ReasonCode, SubscriptionId, SubscriptionOptions, TopicFilter, Unsubscribe, UserProperty,
};

use crate::common::{pid, topic, RawClient, TestBroker, WAIT};

pub use starling_proto::ProtocolVersion::{V3_1_1, V5};

/// How long "nothing arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(250);

/// A client of `version` connected as `id` with a clean start.
pub async fn connected(broker: &TestBroker, version: ProtocolVersion, id: &str) -> RawClient {
    let (client, ack) = connect_with(broker, crate::common::connect(version, id)).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "CONNACK for {id}");
    client
}

/// Connects with `connect` and returns the client and its CONNACK.
pub async fn connect_with(broker: &TestBroker, connect: Connect) -> (RawClient, ConnAck) {
    let mut client = broker.client(connect.protocol).await;
    let ack = client.handshake(connect).await;
    (client, ack)
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

/// A PUBLISH of `payload` (any bytes) to `name` at `qos`, packet id `id`.
pub fn message(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(topic(name), payload);
    p.delivery = starling_proto::Delivery::new(qos, pid(id.max(1)));
    p
}

/// As [`message`], retained.
pub fn retained(name: &str, payload: impl Into<Bytes>, qos: QoS, id: u16) -> Publish {
    let mut p = message(name, payload, qos, id);
    p.retain = true;
    p
}

/// Sends `publish` and completes its QoS flow as the publisher; returns the
/// reason code of the PUBACK or PUBREC (Success for QoS 0, after a PINGREQ
/// round trip that proves the broker has routed it).
pub async fn publish_flow(client: &mut RawClient, publish: Publish) -> ReasonCode {
    let id = publish.packet_id();
    client.send(Packet::Publish(publish)).await;
    let Some(id) = id else {
        sync(client).await;
        return ReasonCode::SUCCESS;
    };
    match client.recv().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.packet_id, id);
            ack.reason_code
        }
        Some(Packet::PubRec(rec)) => {
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
        other => panic!("expected PUBACK or PUBREC, got {other:?}"),
    }
}

/// A PINGREQ / PINGRESP round trip: every packet sent before it has been
/// handled by the broker when this returns.
pub async fn sync(client: &mut RawClient) {
    client.send(Packet::PingReq).await;
    match client.recv().await {
        Some(Packet::PingResp) => {}
        other => panic!("expected PINGRESP, got {other:?}"),
    }
}

/// Acknowledges a PUBLISH the broker sent (PUBACK, or PUBREC then PUBCOMP).
pub async fn ack(client: &mut RawClient, publish: &Publish) {
    match publish.qos() {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            let id = publish.packet_id().unwrap();
            client.send(Packet::PubAck(PubAck::new(id))).await;
        }
        QoS::ExactlyOnce => {
            let id = publish.packet_id().unwrap();
            client.send(Packet::PubRec(PubRec::new(id))).await;
            match client.recv().await {
                Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, id),
                other => panic!("expected PUBREL, got {other:?}"),
            }
            client.send(Packet::PubComp(PubComp::new(id))).await;
        }
    }
}

/// The next PUBLISH, acknowledged.
pub async fn receive(client: &mut RawClient) -> Publish {
    let p = client.expect_publish().await;
    ack(client, &p).await;
    p
}

/// Receives PUBLISHes, acknowledging each (completing QoS 2 flows as PUBRELs
/// arrive), until no packet arrives for [`QUIET`].
pub async fn drain(client: &mut RawClient) -> Vec<Publish> {
    let mut got = Vec::new();
    loop {
        let next = tokio::time::timeout(QUIET, client.recv()).await;
        match next {
            Ok(Some(Packet::Publish(p))) => {
                match (p.qos(), p.packet_id()) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        client.send(Packet::PubAck(PubAck::new(id))).await
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        client.send(Packet::PubRec(PubRec::new(id))).await
                    }
                    _ => {}
                }
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
    String::from_utf8(publish.payload.to_vec()).unwrap()
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

/// Waits for the broker to end the connection: returns the reason code of its
/// DISCONNECT, or `None` if it closed without one (3.x).
pub async fn expect_disconnect(client: &mut RawClient) -> Option<ReasonCode> {
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

/// Sends a normal DISCONNECT and waits for the broker to close the connection.
pub async fn disconnect(mut client: RawClient) {
    client.send(Packet::Disconnect(Default::default())).await;
    client.expect_closed().await;
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

/// A deadline for a polling loop: `tick` waits a little, and fails the test
/// once [`WAIT`] has passed.
pub struct Deadline {
    at: tokio::time::Instant,
    what: &'static str,
}

impl Deadline {
    /// A deadline [`WAIT`] from now for waiting on `what`.
    pub fn start(what: &'static str) -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + WAIT,
            what,
        }
    }

    /// Waits 20 ms before the next poll; panics past the deadline.
    pub async fn tick(&self) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "{}: not within {WAIT:?}",
            self.what
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
