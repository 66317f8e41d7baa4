//! Keep alive over real sockets: the broker closes a silent client after one
//! and a half keep alive periods, any packet (PINGREQ among them) keeps the
//! connection open, and `max_keepalive` caps what clients ask for. Intervals are
//! 1 s; the bounds on when a connection closes are generous.

mod common;

use std::time::{Duration, Instant};

use common::*;
use starling_broker::Config;
use starling_proto::{Connect, ProtocolVersion, QoS, ReasonCode};

/// Earliest a 1 s keep alive may close the connection (1.5 s less slack).
const EARLIEST: Duration = Duration::from_millis(1200);
/// Latest it may close it.
const LATEST: Duration = Duration::from_secs(3);

fn keep_alive(version: ProtocolVersion, id: &str, secs: u16) -> Connect {
    let mut c = connect(version, id);
    c.keep_alive = secs;
    c
}

fn max_keepalive(secs: u16) -> Config {
    Config {
        sys_interval: None,
        max_keepalive: secs,
        ..Config::default()
    }
}

/// Waits for the broker to drop a silent client and returns how long it took
/// from `start`: v5 clients get DISCONNECT 0x8D (Keep Alive timeout) first.
async fn closed_after(client: &mut RawClient, start: Instant) -> Duration {
    expect_disconnect(client, ReasonCode::KEEP_ALIVE_TIMEOUT).await;
    start.elapsed()
}

#[tokio::test]
async fn silent_client_is_closed_after_one_and_a_half_keep_alives() {
    // [MQTT-3.1.2-22]: no packet within 1.5 times the Keep Alive closes the
    // connection; MQTT 5.0 §3.14.2.1: the server may say 0x8D first.
    let broker = TestBroker::start().await;
    let mut runs = Vec::new();
    for version in ProtocolVersion::ALL {
        let (mut client, _) =
            accepted(&broker, keep_alive(version, &format!("quiet{version}"), 1)).await;
        let start = Instant::now();
        runs.push(tokio::spawn(async move {
            (version, closed_after(&mut client, start).await)
        }));
    }
    for run in runs {
        let (version, elapsed) = run.await.unwrap();
        assert!(
            (EARLIEST..LATEST).contains(&elapsed),
            "{version}: closed after {elapsed:?}"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn any_packet_keeps_the_connection_alive() {
    // [MQTT-3.1.2-22]: the timer restarts with every packet received;
    // [MQTT-3.12.4-1]: each PINGREQ gets a PINGRESP. Packets every 0.5 s for
    // 3 s, twice the time a silent client lasts, keep a 1 s keep alive open.
    let broker = TestBroker::start().await;
    for version in [V3_1_1, V5] {
        let (mut client, _) = accepted(&broker, keep_alive(version, "chatty", 1)).await;
        for round in 0..6u16 {
            if round % 2 == 0 {
                sync(&mut client).await;
            } else {
                send_message(&mut client, "chatter", "hi", QoS::AtLeastOnce, round).await;
            }
            // Nothing, and in particular no close, for half a keep alive.
            client.expect_nothing(Duration::from_millis(500)).await;
        }
        sync(&mut client).await;
        disconnect(client).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn v5_keep_alive_above_max_keepalive_is_capped_with_server_keep_alive() {
    // [MQTT-3.2.2-21]: a Server Keep Alive replaces the client's value;
    // [MQTT-3.2.2-22]: without one, the client's value stands.
    let broker = TestBroker::with_config(max_keepalive(10)).await;
    let (_, ack) = accepted(&broker, keep_alive(V5, "greedy", 100)).await;
    assert_eq!(ack.properties.server_keep_alive, Some(10));
    let (_, ack) = accepted(&broker, keep_alive(V5, "modest", 5)).await;
    assert_eq!(ack.properties.server_keep_alive, None);
    broker.stop().await;
}

#[tokio::test]
async fn v5_server_keep_alive_is_the_one_enforced() {
    // [MQTT-3.2.2-21], [MQTT-3.1.2-22]: with max_keepalive 1 a client asking for
    // 60 s is told 1 s and closed once it is silent for 1.5 s.
    let broker = TestBroker::with_config(max_keepalive(1)).await;
    let (mut client, ack) = accepted(&broker, keep_alive(V5, "slow", 60)).await;
    let start = Instant::now();
    assert_eq!(ack.properties.server_keep_alive, Some(1));
    let elapsed = closed_after(&mut client, start).await;
    assert!(
        (EARLIEST..LATEST).contains(&elapsed),
        "closed after {elapsed:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn v3_keep_alive_above_max_keepalive_is_refused() {
    // 3.x has no Server Keep Alive: as Mosquitto, the broker refuses with
    // return code 2 (Identifier rejected) and closes [MQTT-3.2.2-5] (3.1.1).
    let broker = TestBroker::with_config(max_keepalive(10)).await;
    for version in [V3_1, V3_1_1] {
        let (mut client, ack) = connect_with(&broker, keep_alive(version, "greedy", 100)).await;
        assert_eq!(ack.reason_code.to_connect_return_code(), 2, "{version}");
        assert!(!ack.session_present);
        assert!(client.expect_closed().await.is_empty(), "{version}");
        accepted(&broker, keep_alive(version, "modest", 10)).await;
    }
    broker.stop().await;
}
