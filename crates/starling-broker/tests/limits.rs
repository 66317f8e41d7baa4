//! Connection limits: `max_connections`.

mod common;

use common::*;
use starling_broker::Config;
use starling_proto::{ProtocolVersion, ReasonCode};

#[tokio::test]
async fn max_connections_refuses_the_connection_over_the_limit_and_frees_its_slot() {
    let config = Config {
        max_connections: Some(1),
        sys_interval: None,
        ..Config::default()
    };
    let broker = TestBroker::with_config(config).await;
    let mut first = broker.client(ProtocolVersion::V3_1_1).await;
    assert_eq!(
        first
            .handshake(connect(ProtocolVersion::V3_1_1, "one"))
            .await
            .reason_code,
        ReasonCode::SUCCESS
    );

    // The second socket is closed before any CONNACK, as Mosquitto does.
    let mut second = broker.client(ProtocolVersion::V3_1_1).await;
    second
        .send(starling_proto::Packet::Connect(Box::new(connect(
            ProtocolVersion::V3_1_1,
            "two",
        ))))
        .await;
    assert!(second.expect_closed().await.is_empty());

    // Once the first leaves, its slot is free again (the slot is released just
    // after the session detaches, so a refused try is retried).
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut third = broker.client(ProtocolVersion::V3_1_1).await;
        third
            .send(starling_proto::Packet::Connect(Box::new(connect(
                ProtocolVersion::V3_1_1,
                "three",
            ))))
            .await;
        match third.recv().await {
            Some(starling_proto::Packet::ConnAck(ack)) => {
                assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
                break;
            }
            None => assert!(
                tokio::time::Instant::now() < deadline,
                "the slot was never freed"
            ),
            Some(other) => panic!("expected CONNACK, got {other:?}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    broker.stop().await;
}
