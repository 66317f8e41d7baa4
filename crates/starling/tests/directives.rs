//! Issue 18's connection-level mosquitto.conf directives, each over real
//! sockets against `starling broker` and Debian's Mosquitto 2.0.11 with the
//! same lines, through mosquitto_pub and mosquitto_sub:
//!
//! - `clientid_prefixes`: other client identifiers are refused, Not
//!   Authorized (Mosquitto's answer, CONNACK 5);
//! - `use_username_as_clientid`: the user name is the client identifier, and
//!   a client with none is refused;
//! - `max_qos`: subscriptions are granted at most that QoS, a PUBLISH above
//!   it ends the connection, v5 clients are told in CONNACK;
//! - `mount_point`: a listener's clients publish and subscribe under a prefix
//!   they do not see, which clients of another listener do see;
//! - `bind_interface`: the listener's socket is bound to that interface; one
//!   that does not exist stops start-up, naming it.

mod common;

use common::free_port;
use common::tools::{Broker, Done, Kind, Run, Running};

fn both(extra: &str) -> [Broker; 2] {
    [Broker::starling_with(extra), Broker::mosquitto(extra)]
}

fn pub_(broker_port: u16, args: &[&str]) -> Done {
    let port = broker_port.to_string();
    let mut all = vec!["-h", "127.0.0.1", "-p", &port];
    all.extend_from_slice(args);
    Run::mosquitto("mosquitto_pub", all).run()
}

#[test]
fn clientid_prefixes_refuses_other_identifiers_as_not_authorised() {
    for broker in both("clientid_prefixes dev-") {
        let refused = pub_(broker.port, &["-i", "laptop", "-t", "t", "-m", "x"]);
        assert_refused(
            &refused,
            "Connection error: Connection Refused: not authorised.\n",
            5,
            broker.kind,
        );
        let v5 = pub_(
            broker.port,
            &["-V", "5", "-i", "laptop", "-t", "t", "-m", "x"],
        );
        assert_refused(&v5, "Connection error: Not authorized\n", 135, broker.kind);
        let allowed = pub_(broker.port, &["-i", "dev-42", "-t", "t", "-m", "x"]);
        assert_eq!(allowed.code, Some(0), "{:?}: {allowed:?}", broker.kind);
    }
}

#[test]
fn use_username_as_clientid_names_the_client_after_its_user() {
    for broker in both("use_username_as_clientid true") {
        let named = pub_(
            broker.port,
            &["-u", "alice", "-i", "ignored", "-t", "t", "-m", "x"],
        );
        assert_eq!(named.code, Some(0), "{:?}: {named:?}", broker.kind);
        broker.wait_log(" as alice (");
        assert!(!broker.log().contains(" as ignored ("), "{}", broker.log());
        let anonymous = pub_(broker.port, &["-i", "nobody", "-t", "t", "-m", "x"]);
        assert_refused(
            &anonymous,
            "Connection error: Connection Refused: not authorised.\n",
            5,
            broker.kind,
        );
    }
}

#[test]
fn max_qos_downgrades_subscriptions_and_refuses_publishes_above_it() {
    for broker in both("max_qos 1") {
        let port = broker.port.to_string();
        // SUBACK grants QoS 1 for a QoS 2 request.
        let sub = Run::mosquitto(
            "mosquitto_sub",
            [
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "q/#",
                "-q",
                "2",
                "-d",
                "-W",
                "1",
                "-i",
                "qsub",
            ],
        )
        .run();
        assert!(
            sub.stdout.contains("Subscribed (mid: 1): 1"),
            "{:?}: {sub:?}",
            broker.kind
        );
        let ok = pub_(broker.port, &["-t", "q/1", "-m", "x", "-q", "1"]);
        assert_eq!(ok.code, Some(0), "{:?}: {ok:?}", broker.kind);
        // A v5 client learns the highest QoS from CONNACK (Maximum QoS 1):
        // libmosquitto does not even send a QoS 2 PUBLISH.
        let v5 = pub_(broker.port, &["-V", "5", "-t", "q/2", "-m", "x", "-q", "2"]);
        assert!(
            v5.stderr.contains("Message QoS not supported on broker"),
            "{:?}: {v5:?}",
            broker.kind
        );
        // A 3.1.1 client cannot be told: its QoS 2 PUBLISH ends the
        // connection, with no PUBREC.
        let v3 = pub_(broker.port, &["-t", "q/2", "-m", "x", "-q", "2", "-d"]);
        assert!(
            !v3.stdout.contains("received PUBREC"),
            "{:?}: {v3:?}",
            broker.kind
        );
    }
}

#[test]
fn mount_point_puts_a_listeners_clients_under_a_prefix_they_do_not_see() {
    for starling in [true, false] {
        let plain = free_port();
        let extra = format!("mount_point tenant-a/\nlistener {plain} 127.0.0.1\n");
        let broker = if starling {
            Broker::starling_with(&extra)
        } else {
            Broker::mosquitto(&extra)
        };
        let kind = broker.kind;
        let mounted = broker.port.to_string();
        let plain = plain.to_string();
        // Published under the mount point, seen with it from outside.
        let outside = first_message(&plain, "outside");
        wait_subscribed(&broker, "outside");
        let sent = pub_(broker.port, &["-t", "sensors/1", "-m", "from-inside"]);
        assert_eq!(sent.code, Some(0), "{kind:?}: {sent:?}");
        let seen = outside.wait();
        assert_eq!(
            seen.stdout, "tenant-a/sensors/1 from-inside\n",
            "{kind:?}: {seen:?}"
        );
        // Subscribed under it, seen without it from inside; other tenants'
        // topics never reach it.
        let inside = first_message(&mounted, "inside");
        wait_subscribed(&broker, "inside");
        let port: u16 = plain.parse().unwrap();
        assert_eq!(
            pub_(port, &["-t", "tenant-b/x", "-m", "other"]).code,
            Some(0)
        );
        assert_eq!(
            pub_(port, &["-t", "tenant-a/x", "-m", "mine"]).code,
            Some(0)
        );
        let seen = inside.wait();
        // Debian's 2.0.11 still shows the mount point on what it sends: a bug
        // Mosquitto fixed in 2.0.12 (eclipse/mosquitto#2244, "mount_point not
        // being removed on outgoing messages"). Starling does as 2.0.12 does.
        let expected = if starling {
            "x mine\n"
        } else {
            "tenant-a/x mine\n"
        };
        assert_eq!(seen.stdout, expected, "{kind:?}: {seen:?}");
    }
}

/// mosquitto_sub `-v` on every topic of `port` as `id`, for the first
/// message, 5 s at most.
fn first_message(port: &str, id: &str) -> Running {
    Run::mosquitto(
        "mosquitto_sub",
        [
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "#",
            "-v",
            "-C",
            "1",
            "-W",
            "5",
            "-i",
            id,
        ],
    )
    .spawn()
}

/// A refused CONNECT: `line` first (mosquitto_pub may add "Error: The
/// connection was refused." after it, with either broker), and `code`.
fn assert_refused(done: &Done, line: &str, code: i32, kind: Kind) {
    assert!(done.stderr.starts_with(line), "{kind:?}: {done:?}");
    assert_eq!(done.code, Some(code), "{kind:?}: {done:?}");
}

/// Waits until `id`'s SUBSCRIBE was handled: both brokers log it (Starling
/// and Mosquitto with `log_type all`).
fn wait_subscribed(broker: &Broker, id: &str) {
    match broker.kind {
        Kind::Mosquitto => broker.wait_log(&format!("Received SUBSCRIBE from {id}")),
        Kind::Starling => {
            broker.wait_log(&format!(" as {id} ("));
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

#[test]
fn bind_interface_binds_to_the_interface_or_stops_start_up() {
    for broker in both("bind_interface lo") {
        let sent = pub_(broker.port, &["-t", "t", "-m", "x"]);
        assert_eq!(sent.code, Some(0), "{:?}: {sent:?}", broker.kind);
    }
    let port = free_port();
    let scratch = std::env::temp_dir().join(format!("starling-bindif-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let conf = scratch.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nbind_interface nosuch0\n"),
    )
    .unwrap();
    let out = Run::starling("broker", ["-c", conf.to_str().unwrap()])
        .env("STARLING_DATA_DIR", scratch.join("data"))
        .run();
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("bind_interface nosuch0"), "{out:?}");
    std::fs::remove_dir_all(scratch).unwrap();
}

/// Mosquitto 2.1's `accept_protocol_versions` (2.0.11 lacks it, so Starling
/// alone): a 3.1.1 client on a listener that takes only 5 gets CONNACK 1,
/// unacceptable protocol version.
#[test]
fn accept_protocol_versions_refuses_the_others() {
    let broker = Broker::starling_with("accept_protocol_versions 5");
    let old = pub_(broker.port, &["-V", "311", "-t", "t", "-m", "x"]);
    assert_refused(
        &old,
        "Connection error: Connection Refused: unacceptable protocol version.\n",
        1,
        broker.kind,
    );
    let new = pub_(broker.port, &["-V", "5", "-t", "t", "-m", "x"]);
    assert_eq!(new.code, Some(0), "{new:?}");
}

/// Mosquitto 2.1's `listener_allow_anonymous` and `listener_auto_id_prefix`
/// (2.0.11 lacks them): one listener's own, with `per_listener_settings`
/// off and the broker's `allow_anonymous true` for the others.
#[test]
fn listener_allow_anonymous_and_auto_id_prefix_are_the_listeners_own() {
    let open = free_port();
    let broker = Broker::starling_with(&format!(
        "listener_allow_anonymous false\nlistener {open} 127.0.0.1\nlistener_auto_id_prefix open-\n"
    ));
    let closed = pub_(broker.port, &["-t", "t", "-m", "x"]);
    assert_refused(
        &closed,
        "Connection error: Connection Refused: not authorised.\n",
        5,
        broker.kind,
    );
    let v5 = pub_(open, &["-V", "5", "-t", "t", "-m", "x"]);
    assert_eq!(v5.code, Some(0), "{v5:?}");
    broker.wait_log(" as open-");
}
