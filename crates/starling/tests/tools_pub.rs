//! `starling pub` flag by flag, on Debian's `mosquitto` (whose log and own
//! tools show what arrived): `-m`, `-f`, `-s`, `-l`, `-n`, `-M`, `--repeat`,
//! `--repeat-delay`, `-r`, the will flags, `-D`, `-L`, `-u`/`-P`, `-A`, `-k`,
//! `-i`/`-I`, `--nodelay`, `-c`/`-x` persistent sessions, and a publish the
//! broker refuses.

mod common;

use std::time::{Duration, Instant};

use common::tools::{as_starling, Broker, Run, Running};
use common::{tool, Scratch};

/// A `mosquitto_sub` on `filter` that exits after `count` messages, printing
/// each with `format`; returned once the broker has acknowledged it.
fn watch(
    broker: &Broker,
    id: &str,
    filter: &str,
    count: usize,
    format: &str,
    extra: &[&str],
) -> Running {
    let port = broker.port.to_string();
    let count = count.to_string();
    let mut args = vec![
        "-p", &port, "-t", filter, "-q", "2", "-C", &count, "-F", format, "-i", id,
    ];
    args.extend_from_slice(extra);
    let running = Run::mosquitto("mosquitto_sub", &args).spawn();
    broker.wait_log(&format!("Sending SUBACK to {id}\n"));
    running
}

fn publish(broker: &Broker, args: &[&str]) -> common::tools::Done {
    let port = broker.port.to_string();
    let mut all = vec!["-p", port.as_str()];
    all.extend_from_slice(args);
    let done = Run::starling("pub", &all).run();
    assert_eq!(done.code, Some(0), "pub {args:?}: {done:?}");
    done
}

#[test]
fn payloads_from_message_file_stdin_lines_and_null() {
    let broker = Broker::mosquitto("");
    let scratch = Scratch::new("payloads");
    let binary: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\n']).collect();
    let file = scratch.write("payload.bin", &binary);
    let hex: String = binary.iter().map(|b| format!("{b:02x}")).collect();
    let watcher = watch(&broker, "w-payloads", "pl/#", 8, r"%t|%x", &[]);
    publish(&broker, &["-t", "pl/m", "-m", "text message"]);
    publish(
        &broker,
        &["-t", "pl/f", "-f", file.to_str().unwrap(), "-q", "1"],
    );
    let port = broker.port.to_string();
    let stdin = Run::starling("pub", ["-p", &port, "-t", "pl/s", "-s", "-q", "1"])
        .stdin(b"all of\nstdin\n".to_vec())
        .run();
    assert_eq!(stdin.code, Some(0), "{stdin:?}");
    // -l: a message per line, the last one without its newline too, empty lines too.
    let lines = Run::starling("pub", ["-p", &port, "-t", "pl/l", "-l", "-q", "1"])
        .stdin(b"l1\nl2\n\nl4".to_vec())
        .run();
    assert_eq!(lines.code, Some(0), "{lines:?}");
    publish(&broker, &["-t", "pl/n", "-n"]);
    let out = watcher.wait().stdout;
    let hexed = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(
        out,
        format!(
            "pl/m|{}\npl/f|{hex}\npl/s|{}\npl/l|{}\npl/l|{}\npl/l|\npl/l|{}\npl/n|\n",
            hexed("text message"),
            hexed("all of\nstdin\n"),
            hexed("l1"),
            hexed("l2"),
            hexed("l4"),
        )
    );
    // An empty stdin is an error for -s, nothing to do for -l, as in Mosquitto.
    for (args, status) in [(&["-s"][..], 1), (&["-l"][..], 0)] {
        let mut all = vec!["-p", port.as_str(), "-t", "pl/e"];
        all.extend_from_slice(args);
        let theirs = Run::mosquitto("mosquitto_pub", &all)
            .stdin(Vec::new())
            .run();
        let ours = Run::starling("pub", &all).stdin(Vec::new()).run();
        assert_eq!(
            (ours.code, ours.stderr.as_str()),
            (Some(status), theirs.stderr.as_str())
        );
        assert_eq!(ours.code, theirs.code);
    }
}

#[test]
fn lines_keep_order_with_a_small_inflight_window() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    let input: String = (1..=40).map(|n| format!("line {n}\n")).collect();
    let watcher = watch(&broker, "w-lines", "lines", 40, "%p", &[]);
    let done = Run::starling(
        "pub",
        ["-p", &port, "-t", "lines", "-l", "-q", "2", "-M", "3", "-d"],
    )
    .stdin(input.clone())
    .run();
    assert_eq!(done.code, Some(0), "{done:?}");
    assert_eq!(done.stdout.matches("received PUBCOMP").count(), 40);
    assert!(done
        .stdout
        .contains("sending PUBLISH (d0, q2, r0, m40, 'lines', ... (7 bytes))"));
    assert_eq!(watcher.wait().stdout, input);
}

#[test]
fn repeat_and_repeat_delay() {
    let broker = Broker::mosquitto("");
    let watcher = watch(&broker, "w-repeat", "rep", 3, "%p", &[]);
    let start = Instant::now();
    let done = publish(
        &broker,
        &[
            "-t",
            "rep",
            "-m",
            "again",
            "--repeat",
            "3",
            "--repeat-delay",
            "0.3",
            "-q",
            "1",
            "-d",
            "-i",
            "rp",
        ],
    );
    assert!(
        start.elapsed() >= Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(watcher.wait().stdout, "again\nagain\nagain\n");
    let expected: String = (1..=3)
        .map(|m| {
            format!(
                "Client rp sending PUBLISH (d0, q1, r0, m{m}, 'rep', ... (5 bytes))\n\
                 Client rp received PUBACK (Mid: {m}, RC:0)\n"
            )
        })
        .collect();
    assert_eq!(
        done.stdout,
        format!("Client rp sending CONNECT\nClient rp received CONNACK (0)\n{expected}Client rp sending DISCONNECT\n")
    );
}

#[test]
fn retain_will_and_properties() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    // -r: a later subscriber gets it, flagged retained.
    publish(&broker, &["-t", "keep/1", "-m", "kept", "-r", "-q", "1"]);
    let watcher = watch(&broker, "w-retain", "keep/#", 1, "%t %p %r", &[]);
    assert_eq!(watcher.wait().stdout, "keep/1 kept 1\n");

    // The will flags: a client that vanishes leaves its will, retained at its QoS.
    let vanishing = Run::starling(
        "sub",
        [
            "-p",
            &port,
            "-t",
            "nothing",
            "-i",
            "vanisher",
            "--will-topic",
            "will/1",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
            "--will-retain",
            "-d",
        ],
    )
    .spawn();
    vanishing.wait_for("Subscribed");
    vanishing.signal("KILL");
    drop(vanishing);
    broker.wait_log("Client vanisher closed its connection");
    let watcher = watch(&broker, "w-will", "will/1", 1, "%t %p %q %r", &[]);
    assert_eq!(watcher.wait().stdout, "will/1 gone 1 1\n");

    // MQTT 5.0: SIGINT disconnects with reason 4, so the will (with its -D will
    // properties) is published, as mosquitto_sub does.
    let watcher = watch(&broker, "w-will5", "will/2", 1, "%t %p %P", &["-V", "5"]);
    let leaving = Run::starling(
        "sub",
        [
            "-p",
            &port,
            "-V",
            "5",
            "-t",
            "nothing",
            "--will-topic",
            "will/2",
            "--will-payload",
            "bye",
            "-D",
            "will",
            "user-property",
            "why",
            "sigint",
            "-d",
        ],
    )
    .spawn();
    leaving.wait_for("Subscribed");
    leaving.signal("INT");
    let left = leaving.wait();
    assert_eq!(left.code, Some(0));
    assert!(left.stdout.ends_with("sending DISCONNECT\n"), "{left:?}");
    assert_eq!(watcher.wait().stdout, "will/2 bye why:sigint\n");

    // -D by command and name: PUBLISH properties reach the subscriber.
    let watcher = watch(
        &broker,
        "w-props",
        "props",
        1,
        "%C|%D|%E|%F|%P|%R|%p",
        &["-V", "5"],
    );
    publish(
        &broker,
        &[
            "-t",
            "props",
            "-m",
            "with properties",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "PUBLISH",
            "correlation-data",
            "id-7",
            "-D",
            "publish",
            "message-expiry-interval",
            "600",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "user-property",
            "k",
            "w",
            "-D",
            "publish",
            "response-topic",
            "answers/7",
            "-D",
            "connect",
            "session-expiry-interval",
            "0",
            "-D",
            "disconnect",
            "reason-string",
            "done",
        ],
    );
    assert_eq!(
        watcher.wait().stdout,
        "text/plain|id-7|600|1|k:v k:w|answers/7|with properties\n"
    );
    // Properties the protocol forbids are refused with a reason, not sent.
    let ours = Run::starling(
        "pub",
        [
            "-p",
            &port,
            "-t",
            "x",
            "-m",
            "x",
            "-D",
            "publish",
            "payload-format-indicator",
            "2",
        ],
    )
    .run();
    assert_eq!(ours.code, Some(1));
    assert!(
        ours.stderr
            .starts_with("Error in PUBLISH properties: payload-format-indicator"),
        "{ours:?}"
    );
}

#[test]
fn url_credentials_bind_address_keepalive_and_ids() {
    let scratch = Scratch::new("passwd");
    let passwords = scratch.path("passwords");
    let made = std::process::Command::new(tool("mosquitto_passwd"))
        .args(["-b", "-c"])
        .arg(&passwords)
        .args(["alice", "s3cret"])
        .status()
        .unwrap();
    assert!(made.success());
    let broker = Broker::mosquitto(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ));
    let port = broker.port;
    // -L with the user and password in the URL; -A binds the source address;
    // -k and -i show in the broker's log; --nodelay is accepted.
    let url = format!("mqtt://alice:s3cret@127.0.0.1:{port}/url/topic");
    let done = Run::starling(
        "pub",
        [
            "-L",
            &url,
            "-m",
            "via url",
            "-A",
            "127.0.0.2",
            "-k",
            "17",
            "-i",
            "url-client",
            "--nodelay",
        ],
    )
    .run();
    assert_eq!(done.code, Some(0), "{done:?}");
    broker.wait_log("New client connected from 127.0.0.2:");
    broker.wait_log("as url-client (p2, c1, k17, u'alice')");
    // -u and -P, MQTT 5.0, an id from -I and the process id.
    let p = port.to_string();
    let done = Run::starling(
        "pub",
        [
            "-p", &p, "-u", "alice", "-P", "s3cret", "-V", "5", "-I", "pfx-", "-t", "t", "-m", "x",
        ],
    )
    .run();
    assert_eq!(done.code, Some(0), "{done:?}");
    broker.wait_log("as pfx-");
    // A wrong password: refused, in one line, with the CONNACK code.
    let url = format!("mqtt://alice:wrong@127.0.0.1:{port}/url/topic");
    for version in ["mqttv311", "mqttv5"] {
        let theirs = Run::mosquitto("mosquitto_pub", ["-L", &url, "-m", "x", "-V", version]).run();
        let ours = Run::starling("pub", ["-L", &url, "-m", "x", "-V", version]).run();
        assert_eq!(ours.code, theirs.code);
        assert!(
            as_starling(&theirs.stderr).starts_with(&ours.stderr),
            "{ours:?} {theirs:?}"
        );
        assert_eq!(ours.stderr.lines().count(), 1);
    }
    // -A with an address this machine does not have: Mosquitto's words.
    let theirs = Run::mosquitto(
        "mosquitto_pub",
        ["-p", &p, "-t", "t", "-m", "x", "-A", "192.0.2.1"],
    )
    .run();
    let ours = Run::starling("pub", ["-p", &p, "-t", "t", "-m", "x", "-A", "192.0.2.1"]).run();
    assert_eq!(
        (ours.stderr.as_str(), ours.code),
        (theirs.stderr.as_str(), theirs.code)
    );
}

#[test]
fn persistent_sessions_with_c_and_x() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    // (version, options when leaving, options when coming back): MQTT 5.0's
    // -x sets how long the session outlives the connection; -c resumes it.
    let cases: [(&str, &[&str], &[&str]); 3] = [
        ("mqttv311", &["-c"], &["-c"]),
        ("mqttv5", &["-c"], &["-c"]),
        ("mqttv5", &["-x", "60"], &["-c", "-x", "60"]),
    ];
    for (n, (version, leaving, returning)) in cases.into_iter().enumerate() {
        let id = format!("keeper-{n}");
        let sub = |session: &[&str], extra: &[&str]| {
            let mut args = vec![
                "-p",
                port.as_str(),
                "-V",
                version,
                "-i",
                &id,
                "-t",
                "away/#",
                "-q",
                "1",
            ];
            args.extend_from_slice(session);
            args.extend_from_slice(extra);
            Run::starling("sub", &args).run()
        };
        // Subscribe, leave (the session stays), a message comes meanwhile.
        let first = sub(leaving, &["-E"]);
        assert_eq!(first.code, Some(0), "{first:?}");
        publish(
            &broker,
            &[
                "-V",
                version,
                "-t",
                "away/1",
                "-m",
                &format!("while away {n}"),
                "-q",
                "1",
            ],
        );
        let back = sub(returning, &["-C", "1", "-W", "5"]);
        assert_eq!(back.code, Some(0), "{version} {leaving:?}: {back:?}");
        assert_eq!(back.stdout, format!("while away {n}\n"));
    }
    // -x 0 (the default without -c) keeps nothing.
    let sub = |extra: &[&str]| {
        let mut args = vec![
            "-p",
            port.as_str(),
            "-V",
            "5",
            "-i",
            "forgetter",
            "-t",
            "gone/#",
            "-q",
            "1",
        ];
        args.extend_from_slice(extra);
        Run::starling("sub", &args).run()
    };
    assert_eq!(sub(&["-E", "-x", "0"]).code, Some(0));
    publish(&broker, &["-t", "gone/1", "-m", "lost", "-q", "1"]);
    let back = sub(&["-C", "1", "-W", "1"]);
    assert_eq!((back.code, back.stderr.as_str()), (Some(27), "Timed out\n"));
}

#[test]
fn a_refused_publish_is_a_warning_as_in_mosquitto() {
    let scratch = Scratch::new("acl");
    let acl = scratch.write("acl", "topic readwrite ok/#\n");
    let broker = Broker::mosquitto(&format!("acl_file {}\n", acl.display()));
    let port = broker.port.to_string();
    for qos in ["1", "2"] {
        let args = [
            "-p", &port, "-V", "5", "-t", "denied/x", "-m", "x", "-q", qos, "-d", "-i", "refused",
        ];
        let theirs = Run::mosquitto("mosquitto_pub", args).run();
        let ours = Run::starling("pub", args).run();
        assert_eq!(ours.stderr, "Warning: Publish 1 failed: Not authorized.\n");
        assert_eq!(
            (ours.stdout.as_str(), ours.stderr.as_str(), ours.code),
            (theirs.stdout.as_str(), theirs.stderr.as_str(), theirs.code)
        );
    }
}
