//! `$SYS/broker/...` over real sockets, with `sys_interval` 1 s: the topics
//! Mosquitto publishes, with values that follow the broker's state, and only
//! for filters that name `$SYS` [MQTT-4.7.2-1].

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use starling_broker::Config;
use starling_proto::{Packet, QoS};

/// A client subscribed to `$SYS/broker/#` and the latest value of each topic.
struct SysWatch {
    client: RawClient,
    values: HashMap<String, String>,
}

impl SysWatch {
    async fn start(broker: &TestBroker) -> SysWatch {
        let mut client = connected(broker, V5, "sys-watch").await;
        subscribe_one(&mut client, "$SYS/broker/#", opts(QoS::AtMostOnce)).await;
        SysWatch {
            client,
            values: HashMap::new(),
        }
    }

    /// Reads `$SYS` updates until `done` holds for the latest values.
    async fn until(&mut self, what: &str, done: impl Fn(&HashMap<String, String>) -> bool) {
        // A few intervals: every `$SYS` topic is published once a second.
        let deadline = tokio::time::Instant::now() + 2 * WAIT;
        while !done(&self.values) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let packet = tokio::time::timeout(left, self.client.recv()).await;
            match packet {
                Ok(Some(Packet::Publish(p))) => {
                    let name = p.topic.as_str();
                    assert!(name.starts_with("$SYS/broker/"), "{name}");
                    self.values
                        .insert(name["$SYS/broker/".len()..].to_owned(), text(&p));
                }
                other => panic!("{what}: {other:?}; latest values {:#?}", self.values),
            }
        }
    }

    fn get(&self, name: &str) -> &str {
        self.values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    fn number(&self, name: &str) -> u64 {
        let value = self.get(name);
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {value:?}"))
    }
}

fn is(values: &HashMap<String, String>, name: &str, want: &str) -> bool {
    values.get(name).is_some_and(|v| v == want)
}

#[tokio::test]
async fn sys_topics_report_the_broker_state_to_sys_subscribers_only() {
    // [MQTT-4.7.2-1] for who gets them; the topics and values themselves are no
    // normative statement (MQTT 5.0 §4.7.2 leaves `$SYS` to the implementation):
    // they follow Mosquitto's.
    let broker = TestBroker::with_config(Config {
        sys_interval: Some(Duration::from_secs(1)),
        ..Config::default()
    })
    .await;
    let mut watch = SysWatch::start(&broker).await;
    // [MQTT-4.7.2-1]: neither `#` nor `+/...` match `$SYS` topics.
    let mut hash = connected(&broker, V3_1_1, "sys-hash").await;
    subscribe_one(&mut hash, "#", opts(QoS::AtMostOnce)).await;
    let mut plus = connected(&broker, V5, "sys-plus").await;
    subscribe_one(&mut plus, "+/broker/#", opts(QoS::AtMostOnce)).await;
    let mut publisher = connected(&broker, V5, "sys-pub").await;
    publish_flow(
        &mut publisher,
        retained("sys/own", "mine", QoS::AtLeastOnce, 1),
    )
    .await;

    // Four clients, three subscriptions, one retained message besides `$SYS`'s own.
    watch
        .until("the state after the set-up", |v| {
            // Every `$SYS` topic is retained, and it has sent them all by now.
            let retained = (v.len() + 1).to_string();
            is(v, "clients/connected", "4")
                && is(v, "subscriptions/count", "3")
                && is(v, "retained messages/count", &retained)
        })
        .await;
    assert!(
        watch.get("version").starts_with("starling version "),
        "{}",
        watch.get("version")
    );
    let uptime = watch.get("uptime");
    let secs: u64 = uptime
        .strip_suffix(" seconds")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("uptime {uptime:?}"));
    assert!(secs <= 2 * WAIT.as_secs(), "uptime {secs} s");
    assert!(
        watch.number("messages/received") >= 8,
        "4 CONNECTs, 3 SUBSCRIBEs, a PUBLISH"
    );
    assert!(watch.number("messages/sent") >= 4, "at least the CONNACKs");
    assert!(watch.number("publish/messages/received") >= 1);
    assert!(watch.number("bytes/received") > 0);
    assert!(watch.number("clients/maximum") >= 4);
    for name in [
        "load/connections/1min",
        "load/publish/received/5min",
        "load/bytes/sent/15min",
    ] {
        let value: f64 = watch
            .get(name)
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {:?}", watch.get(name)));
        assert!(value >= 0.0, "{name} = {value}");
    }

    let got = drain(&mut hash).await;
    let names: Vec<&str> = got.iter().map(|p| p.topic.as_str()).collect();
    assert_eq!(names, vec!["sys/own"], "[MQTT-4.7.2-1]");
    plus.expect_nothing(QUIET).await;

    // clients/connected counts the connected clients, not the sessions.
    send_disconnect(publisher).await;
    send_disconnect(plus).await;
    watch
        .until("two clients gone", |v| {
            is(v, "clients/connected", "2") && is(v, "subscriptions/count", "2")
        })
        .await;
    broker.stop().await;
}

#[tokio::test]
async fn sys_message_counters_grow_with_the_traffic() {
    // No normative statement: Mosquitto's `publish/messages/received` counts
    // the PUBLISH packets received.
    let broker = TestBroker::with_config(Config {
        sys_interval: Some(Duration::from_secs(1)),
        ..Config::default()
    })
    .await;
    let mut watch = SysWatch::start(&broker).await;
    watch
        .until("a first report", |v| {
            v.contains_key("publish/messages/received")
        })
        .await;
    let before = watch.number("publish/messages/received");
    let mut publisher = connected(&broker, V3_1_1, "sys-count").await;
    for n in 1..=5u16 {
        publish_flow(&mut publisher, message("count/t", "x", QoS::AtLeastOnce, n)).await;
    }
    let want = before + 5;
    watch
        .until("five more PUBLISHes received", |v| {
            v.get("publish/messages/received")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n >= want)
        })
        .await;
    broker.stop().await;
}
