//! Durability (issue 6), end to end against the `starling broker` binary:
//! what the broker acknowledged or stored survives a graceful stop (SIGTERM)
//! and a crash (SIGKILL), and exactly-once stays exactly once across restarts.
//!
//! - `crash`: publishers at full speed, SIGKILL at a random moment, restart
//!   on the same store; every acknowledged message reaches both persistent
//!   subscribers, none of the QoS 2 ones twice;
//! - `restart`: one test per stored item, each run with SIGTERM
//!   (`restart::graceful::`) and SIGKILL (`restart::kill::`): retained
//!   messages with their properties, subscriptions with their options,
//!   queued messages in order, outbound in-flight QoS 1 and 2, the
//!   PUBREL-pending state, inbound QoS 2 awaiting PUBREL, delayed wills,
//!   session and message expiry while the broker is down;
//! - `torture`: the crash round again and again (for minutes with
//!   `scripts/torture`), with a shared subscription, a subscriber taken over
//!   mid-stream and MQTT 5.0 publishers that resume too;
//! - `storage`: a damaged store, a full disk (a 2 MiB tmpfs: the tests run as
//!   root), `persistence false`, `--data-dir` and the default directory.
//!
//! The raw-socket client (`common::raw`) lets a test choose packet
//! identifiers and DUP flags and withhold acknowledgements; the crash test's
//! publishers use `starling-client`, whose publish completes at PUBACK /
//! PUBCOMP. Set `STARLING_CRASH_SEED` to replay a crash test run.

mod common;
#[path = "durability/crash.rs"]
mod crash;
#[path = "durability/restart.rs"]
mod restart;
#[path = "durability/storage.rs"]
mod storage;
#[path = "durability/torture.rs"]
mod torture;

use starling_proto::{Publish, QoS, TopicName, UserProperty};

use common::raw::{message, mqtt_string, text, Login, Raw};
use common::restartable::Stop;

/// Publishes `marker` on `topic` at `qos` from a client of its own: once a
/// subscriber receives it, everything queued before it has arrived.
fn publish_marker(port: u16, topic: &str, qos: QoS) {
    let (mut client, _) = Raw::connect(port, Login::v5("marker"));
    let code = client.publish(message(topic, "marker", qos));
    assert!(!code.is_error(), "the marker was refused: {code}");
    client.disconnect();
}

/// The payloads, as text.
fn payloads(messages: &[Publish]) -> Vec<String> {
    messages.iter().map(text).collect()
}

/// Reconnects `login` (a persistent session) and asserts the broker resumed
/// it: [MQTT-3.1.2-4] (3.1.1) / [MQTT-3.2.2-3] (5.0), session present.
fn resume(port: u16, login: Login, stop: Stop) -> Raw {
    let (raw, connack) = Raw::connect(port, login.clone().clean(false));
    assert!(
        connack.session_present,
        "{}: session_present=0 after a restart ({stop}): the session was not restored",
        login.client_id()
    );
    raw
}

/// A user property.
fn user(name: &str, value: &str) -> UserProperty {
    UserProperty {
        name: mqtt_string(name),
        value: mqtt_string(value),
    }
}

fn topic(name: &str) -> TopicName {
    TopicName::try_from(name).expect("a valid topic")
}
