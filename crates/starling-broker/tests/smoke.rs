//! The basic flows over real sockets: connect, subscribe, publish at each QoS.

mod common;

use common::*;
use starling_proto::{Packet, ProtocolVersion, PubRel, QoS, ReasonCode};

#[tokio::test]
async fn qos_flows_end_to_end_for_every_version() {
    let broker = TestBroker::start().await;
    for version in ProtocolVersion::ALL {
        let mut sub = broker.client(version).await;
        let ack = sub.handshake(connect(version, "sub")).await;
        assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
        assert!(!ack.session_present);
        assert_eq!(
            sub.subscribe(1, "sensors/drone03/#", QoS::ExactlyOnce)
                .await,
            vec![ReasonCode::GRANTED_QOS_2]
        );

        let mut publisher = broker.client(version).await;
        publisher.handshake(connect(version, "pub")).await;
        publisher
            .send(Packet::Publish(publish(
                "sensors/drone03/speed",
                "q0",
                QoS::AtMostOnce,
                0,
            )))
            .await;
        let got = sub.expect_publish().await;
        assert_eq!(&got.payload[..], b"q0");
        assert_eq!(got.qos(), QoS::AtMostOnce);

        publisher
            .send(Packet::Publish(publish(
                "sensors/drone03/speed",
                "q1",
                QoS::AtLeastOnce,
                1,
            )))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubAck(a)) if a.packet_id == pid(1)));
        let got = sub.expect_publish().await;
        assert_eq!(got.qos(), QoS::AtLeastOnce);

        // [MQTT-4.3.3-*]: PUBLISH, PUBREC, PUBREL, PUBCOMP.
        publisher
            .send(Packet::Publish(publish(
                "sensors/drone03/speed/rotor/1",
                "362 f",
                QoS::ExactlyOnce,
                2,
            )))
            .await;
        assert!(matches!(publisher.recv().await, Some(Packet::PubRec(r)) if r.packet_id == pid(2)));
        publisher.send(Packet::PubRel(PubRel::new(pid(2)))).await;
        assert!(
            matches!(publisher.recv().await, Some(Packet::PubComp(c)) if c.packet_id == pid(2))
        );
        let got = sub.expect_publish().await;
        assert_eq!(got.qos(), QoS::ExactlyOnce);
        assert_eq!(&got.payload[..], b"362 f");
        let id = got.packet_id().unwrap();
        sub.send(Packet::PubRec(starling_proto::PubRec::new(id)))
            .await;
        assert!(matches!(sub.recv().await, Some(Packet::PubRel(r)) if r.packet_id == id));
        sub.send(Packet::PubComp(starling_proto::PubComp::new(id)))
            .await;
    }
    broker.stop().await;
}
