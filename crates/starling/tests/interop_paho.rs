//! Eclipse Paho for Python (paho-mqtt 2.x, callback API version 2) against
//! `starling broker`, MQTT 3.1.1 and 5.0.
//!
//! The scripts live in tests/paho/; each prints one result line ("PASS ..."
//! or "FAIL ...") and exits non-zero on failure. Every scenario runs against
//! Debian's `mosquitto` first, which shows that the script's expectations
//! are the reference broker's behaviour, then against Starling.

#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::{tool, Broker, BrokerKind, Finished, Peer, HOST};

/// The Python interpreter, once it is known to import paho-mqtt 2.x; panics
/// (the test fails, it is not skipped) otherwise. It is the interpreter's own
/// path (`sys.executable`), which starts faster than a pyenv shim.
fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let python = tool("python3");
            let check = "import sys\n\
                         from importlib.metadata import version\n\
                         import paho.mqtt.client\n\
                         print(version('paho-mqtt'))\n\
                         print(sys.executable)";
            let out = Peer::spawn(&python, &["-c", check]).wait();
            let found = out.stdout.first().cloned().unwrap_or_default();
            assert!(
                out.status.success() && found.starts_with("2.") && out.stdout.len() == 2,
                "{} cannot import paho-mqtt 2.x (found {found:?}): run scripts/test, which \
                 installs it; it printed:\n{out}",
                python.display()
            );
            PathBuf::from(&out.stdout[1])
        })
        .clone()
}

/// `python3 -u -B tests/paho/SCRIPT HOST PORT VERSION EXTRA...`, running.
fn paho(script: &str, broker: &Broker, version: &str, extra: &[&str]) -> Peer {
    let script = format!("{}/tests/paho/{script}", env!("CARGO_MANIFEST_DIR"));
    let port = broker.port().to_string();
    // -u: unbuffered output, seen as printed; -B: no __pycache__ in the tree.
    let mut args = vec!["-u", "-B", &script, HOST, &port, version];
    args.extend_from_slice(extra);
    Peer::spawn(&python(), &args)
}

/// Panics unless the script exited 0 and its last line is its PASS line.
fn assert_passed(kind: BrokerKind, finished: &Finished, pass: &str) {
    let last = finished
        .stdout
        .last()
        .map(String::as_str)
        .unwrap_or_default();
    assert!(
        finished.status.success() && last.starts_with(pass),
        "against {kind}: `{}` did not pass ({}); it printed:\n{finished}",
        finished.label,
        finished.status
    );
}

/// Runs a self-contained script against Mosquitto, then Starling.
fn run_against_both(script: &str, version: &str, pass: &str) -> Finished {
    let mut last = None;
    for kind in [BrokerKind::Mosquitto, BrokerKind::Starling] {
        let broker = Broker::start(kind);
        let finished = paho(script, &broker, version, &[]).wait();
        assert_passed(kind, &finished, pass);
        last = Some(finished);
    }
    last.expect("two runs")
}

/// The seed's publisher: will_set() before connect(), then QoS 0, 1 and 2
/// publishes awaited with wait_for_publish(); Paho numbers them 1, 2, 3 as in
/// the seed's captures, and the subscriber gets each at its own QoS.
fn qos_with_will(version: &str) {
    let finished = run_against_both("qos_will.py", version, &format!("PASS qos_will {version}"));
    assert_eq!(
        finished.stdout[..3],
        [
            "Sent message - id: 1, QoS: 0",
            "Sent message - id: 2, QoS: 1",
            "Sent message - id: 3, QoS: 2",
        ]
    );
}

#[test]
fn paho_qos_0_1_2_with_will_set_v311() {
    qos_with_will("v311");
}

#[test]
fn paho_qos_0_1_2_with_will_set_v5() {
    qos_with_will("v5");
}

#[test]
fn paho_persistent_session_resumed_with_queued_messages_v311() {
    run_against_both("session.py", "v311", "PASS session v311");
}

#[test]
fn paho_persistent_session_resumed_with_queued_messages_v5() {
    run_against_both("session.py", "v5", "PASS session v5");
}

/// The publisher's process is killed with SIGKILL: its socket closes without
/// DISCONNECT and the broker publishes its will to the watching subscriber.
fn will_on_socket_death(version: &str) {
    for kind in [BrokerKind::Mosquitto, BrokerKind::Starling] {
        let broker = Broker::start(kind);
        let watcher = paho("will.py", &broker, version, &["watcher"]);
        watcher.wait_for_stdout("SUBSCRIBED", |line| line == "SUBSCRIBED");
        let victim = paho("will.py", &broker, version, &["victim"]);
        victim.wait_for_stdout("CONNECTED", |line| line == "CONNECTED");
        let victim = victim.kill();
        assert_eq!(
            victim.stdout,
            ["CONNECTED"],
            "against {kind}: the victim printed:\n{victim}"
        );
        let watcher = watcher.wait();
        assert_passed(kind, &watcher, &format!("PASS will {version}"));
    }
}

#[test]
fn paho_will_published_when_publisher_is_killed_v311() {
    will_on_socket_death("v311");
}

#[test]
fn paho_will_published_when_publisher_is_killed_v5() {
    will_on_socket_death("v5");
}
