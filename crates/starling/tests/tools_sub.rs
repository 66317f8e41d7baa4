//! `starling sub` flag by flag, each run next to `mosquitto_sub` with the same
//! arguments on the same `mosquitto` broker (one after the other, so that they
//! do not see each other's publishes): `-C`, `-W`, `-E`, `-T`, `-U`, `-N`,
//! `-v`, `-R`, `--retain-as-published`, `--retained-only`,
//! `--remove-retained`, `--random-filter`, `-q`, and SIGINT/SIGTERM.

mod common;

use common::tools::{as_starling, mask_ids, Broker, Done, Run};

/// Runs `sub ARGS` (ours or Mosquitto's) with id `ID`: `setup` first, then
/// `during` once it is subscribed; waits for it to end, or interrupts it with
/// `signal` once its output contains `until`.
fn session(
    broker: &Broker,
    ours: bool,
    args: &[&str],
    setup: &dyn Fn(),
    during: &dyn Fn(),
    stop: Option<(&str, &str)>,
) -> Done {
    setup();
    let port = broker.port.to_string();
    let mut all = vec!["-p", port.as_str(), "-i", "ID"];
    all.extend_from_slice(args);
    const SUBACK: &str = "Sending SUBACK to ID\n";
    let before = broker.log().matches(SUBACK).count();
    let sub = if ours {
        Run::starling("sub", &all)
    } else {
        Run::mosquitto_line_buffered("mosquitto_sub", &all)
    }
    .spawn();
    let deadline = std::time::Instant::now() + common::WAIT;
    while broker.log().matches(SUBACK).count() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "sub {args:?} never subscribed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    during();
    if let Some((until, signal)) = stop {
        sub.wait_for(until);
        sub.signal(signal);
    }
    sub.wait()
}

/// The same output and status from both tools.
fn same(
    broker: &Broker,
    args: &[&str],
    setup: &dyn Fn(),
    during: &dyn Fn(),
    stop: Option<(&str, &str)>,
) -> Done {
    let theirs = session(broker, false, args, setup, during, stop);
    let ours = session(broker, true, args, setup, during, stop);
    assert_eq!(
        mask_ids(&ours.stdout),
        mask_ids(&theirs.stdout),
        "stdout of sub {args:?}"
    );
    assert_eq!(
        ours.stderr,
        as_starling(&theirs.stderr),
        "stderr of sub {args:?}"
    );
    assert_eq!(ours.code, theirs.code, "status of sub {args:?}");
    ours
}

fn publisher(broker: &Broker) -> impl Fn(&[&str]) + '_ {
    move |args: &[&str]| {
        let port = broker.port.to_string();
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        let done = Run::mosquitto("mosquitto_pub", &all).run();
        assert_eq!(done.code, Some(0), "{done:?}");
    }
}

#[test]
fn count_timeout_and_exit_after_subscribe() {
    let broker = Broker::mosquitto("");
    let publish = publisher(&broker);
    let none = || {};
    // -C: exits after that many messages (QoS 0, 1 and 2 here).
    let ours = same(
        &broker,
        &["-t", "c/#", "-q", "2", "-C", "3", "-d", "-v"],
        &none,
        &|| {
            publish(&["-t", "c/0", "-m", "zero"]);
            publish(&["-t", "c/1", "-m", "one", "-q", "1"]);
            publish(&["-t", "c/2", "-m", "two", "-q", "2"]);
        },
        None,
    );
    assert!(
        ours.stdout
            .ends_with("c/2 two\nClient ID sending DISCONNECT\n"),
        "{ours:?}"
    );
    // -W: "Timed out", status 27, after a DISCONNECT.
    let ours = same(&broker, &["-t", "w/#", "-W", "1", "-d"], &none, &none, None);
    assert_eq!((ours.code, ours.stderr.as_str()), (Some(27), "Timed out\n"));
    // -E: exits once subscribed; -U unsubscribes (one UNSUBSCRIBE per filter).
    let ours = same(
        &broker,
        &[
            "-t", "e/#", "-t", "f/+", "-U", "old/#", "-U", "older", "-E", "-d", "-V", "5", "-q",
            "1",
        ],
        &none,
        &none,
        None,
    );
    assert!(ours
        .stdout
        .contains("Client ID sending UNSUBSCRIBE (Mid: 3, Topic: older)\n"));
    assert!(ours.stdout.contains("Subscribed (mid: 1): 1, 1\n"));
}

#[test]
fn filters_and_output_options() {
    let broker = Broker::mosquitto("");
    let publish = publisher(&broker);
    let none = || {};
    // -T hides matching topics; -N drops the newline; -v shows the topic.
    same(
        &broker,
        &["-t", "o/#", "-T", "o/hidden/#", "-C", "2", "-N", "-v"],
        &none,
        &|| {
            publish(&["-t", "o/hidden/1", "-m", "no"]);
            publish(&["-t", "o/shown", "-m", "yes"]);
            publish(&["-t", "o/empty", "-n"]);
            publish(&["-t", "o/last", "-m", "end"]);
        },
        None,
    );
    // -R: retained messages are not printed (and, for MQTT 5.0, not sent:
    // "Options: 0x20"); --retain-as-published: "Options: 0x08", flag kept.
    let setup = || publish(&["-t", "r/old", "-m", "stale", "-r"]);
    for version in ["mqttv311", "mqttv5"] {
        let ours = same(
            &broker,
            &["-t", "r/#", "-R", "-C", "1", "-v", "-d", "-V", version],
            &setup,
            &|| publish(&["-t", "r/new", "-m", "fresh"]),
            None,
        );
        assert!(ours.stdout.contains("r/new fresh\n") && !ours.stdout.contains("r/old stale\n"));
    }
    let ours = same(
        &broker,
        &[
            "-t",
            "rap/#",
            "--retain-as-published",
            "-C",
            "1",
            "-F",
            "%t %r",
            "-d",
            "-V",
            "5",
        ],
        &none,
        &|| publish(&["-t", "rap/1", "-m", "x", "-r"]),
        None,
    );
    assert!(
        ours.stdout.contains("Options: 0x08)\n") && ours.stdout.contains("rap/1 1\n"),
        "{ours:?}"
    );
    // --random-filter 100 prints everything, as the help says (Mosquitto
    // 2.0.11 prints a tenth: it scales the percentage by 10, not 100).
    let port = broker.port.to_string();
    let sub = Run::starling(
        "sub",
        [
            "-p",
            &port,
            "-t",
            "rf",
            "--random-filter",
            "100",
            "-C",
            "20",
            "-i",
            "rf",
        ],
    )
    .spawn();
    broker.wait_log("Sending SUBACK to rf\n");
    for n in 0..20 {
        publish(&["-t", "rf", "-m", &n.to_string()]);
    }
    let expected: String = (0..20).map(|n| format!("{n}\n")).collect();
    assert_eq!(sub.wait().stdout, expected);
}

#[test]
fn retained_only_and_remove_retained() {
    let broker = Broker::mosquitto("");
    let publish = publisher(&broker);
    let setup = || {
        publish(&["-t", "k/1", "-m", "one", "-r"]);
        publish(&["-t", "k/keep", "-m", "kept", "-r", "-q", "1"]);
    };
    // --retained-only: prints the retained messages, ends at the first live one.
    let ours = same(
        &broker,
        &["-t", "k/#", "--retained-only", "-v", "-d", "-q", "1"],
        &setup,
        &|| publish(&["-t", "k/live", "-m", "now"]),
        None,
    );
    assert!(ours
        .stdout
        .contains("k/1 one\nClient ID received PUBLISH (d0, q1, r1"));
    // --remove-retained: clears what it received (not what -T filters out),
    // with an empty retained QoS 1 publish logged before the message.
    let ours = same(
        &broker,
        &[
            "-t",
            "k/#",
            "--remove-retained",
            "-T",
            "k/keep",
            "-v",
            "-d",
            "-W",
            "1",
        ],
        &setup,
        &|| {},
        None,
    );
    assert!(
        ours.stdout.contains(
            "Client ID sending PUBLISH (d0, q1, r1, m2, 'k/1', ... (0 bytes))\nk/1 one\n"
        ),
        "{ours:?}"
    );
    let left = session(
        &broker,
        true,
        &["-t", "k/#", "-v", "-W", "1"],
        &|| {},
        &|| {},
        None,
    );
    assert_eq!(left.stdout, "k/keep kept\n");
}

#[test]
fn sigint_and_sigterm_disconnect_cleanly() {
    let broker = Broker::mosquitto("");
    for signal in ["INT", "TERM"] {
        same(
            &broker,
            &["-t", "s/#", "-d"],
            &|| {},
            &|| {},
            Some(("Subscribed (mid: 1): 0\n", signal)),
        );
    }
}
