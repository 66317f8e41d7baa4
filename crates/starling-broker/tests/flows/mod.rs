//! Helpers for the connection lifecycle tests (`connect`, `sessions`, `qos`,
//! `will`, `keepalive`), on top of the harness in `common`: CONNECTs that keep
//! a session or carry a will, both ends of the QoS flows, and waits that end on
//! a packet, a closed socket or a deadline, never on a bare sleep.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use bytes::Bytes;
use starling_proto::property::WillProperties;
use starling_proto::{
    ConnAck, Connect, Disconnect, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel,
    Publish, QoS, ReasonCode, Will,
};
use tokio::io::AsyncReadExt;

use crate::common::{connect, publish, topic, RawClient, TestBroker};

#[allow(unused_imports)]
pub use starling_proto::ProtocolVersion::{V3_1, V3_1_1, V5};

/// How long "nothing arrives" is watched for.
pub const QUIET: Duration = Duration::from_millis(300);

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

/// A clean v5 client subscribed to `filter` at QoS 2: sees everything published there.
pub async fn watcher(broker: &TestBroker, id: &str, filter: &str) -> RawClient {
    let (mut client, _) = accepted(broker, connect(V5, id)).await;
    client.subscribe(1, filter, QoS::ExactlyOnce).await;
    client
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

/// Sends `publish` and completes its QoS flow as the publisher; for QoS 0, a
/// PINGREQ round trip proves the broker has routed it.
pub async fn publish_flow(client: &mut RawClient, publish: Publish) {
    let id = publish.packet_id();
    let qos = publish.qos();
    client.send(Packet::Publish(publish)).await;
    let Some(id) = id else {
        return sync(client).await;
    };
    match (qos, client.recv().await) {
        (QoS::AtLeastOnce, Some(Packet::PubAck(ack))) => assert_eq!(ack.packet_id, id),
        (QoS::ExactlyOnce, Some(Packet::PubRec(rec))) => {
            assert_eq!(rec.packet_id, id);
            client.send(Packet::PubRel(PubRel::new(id))).await;
            match client.recv().await {
                Some(Packet::PubComp(comp)) => assert_eq!(comp.packet_id, id),
                other => panic!("expected PUBCOMP, got {other:?}"),
            }
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

/// Receives `n` PUBLISHes, acknowledging each as it arrives and completing the
/// QoS 2 flows whose PUBRELs arrive between them; returns them in arrival order.
pub async fn receive_n(client: &mut RawClient, n: usize) -> Vec<Publish> {
    let mut got = Vec::new();
    let mut releasing = 0;
    while got.len() < n || releasing > 0 {
        match client.recv().await {
            Some(Packet::Publish(p)) => {
                match (p.qos(), p.packet_id()) {
                    (QoS::AtLeastOnce, Some(id)) => {
                        client.send(Packet::PubAck(PubAck::new(id))).await;
                    }
                    (QoS::ExactlyOnce, Some(id)) => {
                        client.send(Packet::PubRec(PubRec::new(id))).await;
                        releasing += 1;
                    }
                    _ => {}
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

/// The payload as text.
pub fn text(publish: &Publish) -> &str {
    std::str::from_utf8(&publish.payload).expect("UTF-8 payload")
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

/// Sends a normal DISCONNECT and waits for the broker to close the connection.
pub async fn disconnect(mut client: RawClient) {
    client.send(Packet::Disconnect(Disconnect::default())).await;
    let seen = client.expect_closed().await;
    assert!(
        seen.is_empty(),
        "[MQTT-3.14.4-1] packets after DISCONNECT: {seen:?}"
    );
}

/// Reads raw bytes until the broker closes the socket; panics after `deadline`.
pub async fn read_until_closed(client: &mut RawClient, deadline: Duration) -> Vec<u8> {
    let mut bytes = Vec::new();
    tokio::time::timeout(deadline, async {
        loop {
            match client.stream.read_buf(&mut bytes).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the broker did not close the connection");
    bytes
}

/// Waits until the broker holds `n` sessions, online or not.
pub async fn sessions_become(broker: &TestBroker, n: usize) {
    crate::common::eventually(|| broker.broker.session_count() == n).await;
}
