//! `starling pub`, `sub` and `rr` against Mosquitto 2.0.11, both ways: our
//! tools on Debian's `mosquitto` broker, Mosquitto's tools on `starling broker`,
//! MQTT 3.1.1 and 5.0; and line for line against Mosquitto's own tools run in
//! the same test on the same broker: the `-d` lines of the "MQTT Essentials"
//! exactly-once session, `-F` output, and a request/response with `rr`.

mod common;

use common::tools::{mask_ids, Broker, Done, Kind, Run};

/// The exactly-once session of "MQTT Essentials" (Working with exactly once
/// delivery): `sub -V mqttv311 -t sensors/drone03/# -q 2 -d`, then `pub -V
/// mqttv311 -t sensors/drone03/speed/rotor/1 -m "362 f" -q 2 -d`; the
/// subscriber ends with SIGINT. Returns (pub stdout, sub stdout), ids masked.
fn exactly_once_session(broker: &Broker, ours: bool, version: &str) -> (String, String) {
    debug_session(broker, ours, version, "2")
}

/// The same session at `qos`.
fn debug_session(broker: &Broker, ours: bool, version: &str, qos: &str) -> (String, String) {
    let port = broker.port.to_string();
    let sub_args = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-V",
        version,
        "-t",
        "sensors/drone03/#",
        "-q",
        qos,
        "-d",
    ];
    let sub = if ours {
        Run::starling("sub", sub_args)
    } else {
        Run::mosquitto_line_buffered("mosquitto_sub", sub_args)
    }
    .spawn();
    sub.wait_for(&format!("Subscribed (mid: 1): {qos}\n"));
    let publish = Run::either(
        ours,
        "pub",
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            version,
            "-t",
            "sensors/drone03/speed/rotor/1",
            "-m",
            "362 f",
            "-q",
            qos,
            "-d",
        ],
    )
    .run();
    assert_eq!(publish.code, Some(0), "pub: {publish:?}");
    sub.wait_for("362 f\n");
    sub.signal("INT");
    let sub = sub.wait();
    assert_eq!(sub.code, Some(0), "sub: {sub:?}");
    assert_eq!(sub.stderr, "");
    (mask_ids(&publish.stdout), mask_ids(&sub.stdout))
}

fn exactly_once_matches_mosquitto(kind: Kind, version: &str) {
    let broker = Broker::start(kind);
    let (mosquitto_pub, mosquitto_sub) = exactly_once_session(&broker, false, version);
    let (our_pub, our_sub) = exactly_once_session(&broker, true, version);
    assert_eq!(
        our_pub, mosquitto_pub,
        "pub -d lines, {kind:?} broker, {version}"
    );
    assert_eq!(
        our_sub, mosquitto_sub,
        "sub -d lines, {kind:?} broker, {version}"
    );
    // And what those lines are, in Mosquitto 2.0.11's words: with MQTT 3.1.1 a
    // client that lets the broker choose its id does not know it: "(null)".
    let (c, a) = match version {
        "mqttv311" => ("(null)", "(null)"),
        _ => ("(null)", "ID"),
    };
    let topic = "'sensors/drone03/speed/rotor/1', ... (5 bytes)";
    assert_eq!(
        our_pub,
        format!(
            "Client {c} sending CONNECT\n\
             Client {a} received CONNACK (0)\n\
             Client {a} sending PUBLISH (d0, q2, r0, m1, {topic})\n\
             Client {a} received PUBREC (Mid: 1)\n\
             Client {a} sending PUBREL (m1)\n\
             Client {a} received PUBCOMP (Mid: 1, RC:0)\n\
             Client {a} sending DISCONNECT\n"
        )
    );
    assert_eq!(
        our_sub,
        format!(
            "Client {c} sending CONNECT\n\
             Client {a} received CONNACK (0)\n\
             Client {a} sending SUBSCRIBE (Mid: 1, Topic: sensors/drone03/#, QoS: 2, Options: 0x00)\n\
             Client {a} received SUBACK\n\
             Subscribed (mid: 1): 2\n\
             Client {a} received PUBLISH (d0, q2, r0, m1, {topic})\n\
             Client {a} sending PUBREC (m1, rc0)\n\
             Client {a} received PUBREL (Mid: 1)\n\
             Client {a} sending PUBCOMP (m1)\n\
             362 f\n\
             Client {a} sending DISCONNECT\n"
        )
    );
}

#[test]
fn exactly_once_session_311_reads_as_mosquittos_on_mosquitto() {
    exactly_once_matches_mosquitto(Kind::Mosquitto, "mqttv311");
}

#[test]
fn exactly_once_session_5_reads_as_mosquittos_on_mosquitto() {
    exactly_once_matches_mosquitto(Kind::Mosquitto, "mqttv5");
}

#[test]
fn qos_0_and_1_sessions_read_as_mosquittos() {
    let broker = Broker::start(Kind::Mosquitto);
    for version in ["mqttv31", "mqttv311", "mqttv5"] {
        for qos in ["0", "1"] {
            let theirs = debug_session(&broker, false, version, qos);
            let ours = debug_session(&broker, true, version, qos);
            assert_eq!(ours, theirs, "{version} QoS {qos}");
        }
    }
}

#[test]
fn exactly_once_session_reads_as_mosquittos_on_starling() {
    exactly_once_matches_mosquitto(Kind::Starling, "mqttv311");
    exactly_once_matches_mosquitto(Kind::Starling, "mqttv5");
}

/// One side's tools (ours, or Mosquitto's) on `kind`'s broker: a subscriber
/// gets a message at each QoS, in order, for MQTT 3.1.1 and 5.0, from the
/// other side's publisher too.
fn interop(kind: Kind, ours: bool) {
    let broker = Broker::start(kind);
    let port = broker.port.to_string();
    for version in ["mqttv311", "mqttv5"] {
        let topic = format!("interop/{version}/#");
        let sub_args = [
            "-p", &port, "-V", version, "-t", &topic, "-q", "2", "-v", "-C", "6", "-d",
        ];
        let sub = if ours {
            Run::starling("sub", sub_args)
        } else {
            Run::mosquitto_line_buffered("mosquitto_sub", sub_args)
        }
        .spawn();
        sub.wait_for("Subscribed (mid: 1): 2\n");
        // Three from the same side's pub, three from the other side's, each
        // received before the next is sent.
        for (n, publisher_ours) in [
            (0, ours),
            (1, ours),
            (2, ours),
            (0, !ours),
            (1, !ours),
            (2, !ours),
        ] {
            let payload = format!(
                "qos {n} from {}",
                if publisher_ours {
                    "starling"
                } else {
                    "mosquitto"
                }
            );
            let done = Run::either(
                publisher_ours,
                "pub",
                [
                    "-p",
                    &port,
                    "-V",
                    version,
                    "-t",
                    &format!("interop/{version}/q{n}"),
                    "-m",
                    &payload,
                    "-q",
                    &n.to_string(),
                ],
            )
            .run();
            assert_eq!(done.code, Some(0), "{done:?}");
            sub.wait_for(&format!(" {payload}\n"));
        }
        let done = sub.wait();
        assert_eq!(done.code, Some(0), "{done:?}");
        let messages: Vec<&str> = done
            .stdout
            .lines()
            .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed "))
            .collect();
        let (us, them) = if ours {
            ("starling", "mosquitto")
        } else {
            ("mosquitto", "starling")
        };
        let expected: Vec<String> = [us, them]
            .iter()
            .flat_map(|who| {
                (0..3).map(move |n| format!("interop/{version}/q{n} qos {n} from {who}"))
            })
            .collect();
        assert_eq!(messages, expected, "{kind:?} broker, {version}");
    }
}

#[test]
fn starling_tools_work_with_the_mosquitto_broker() {
    interop(Kind::Mosquitto, true);
}

#[test]
fn mosquitto_tools_work_with_the_starling_broker() {
    interop(Kind::Starling, false);
}

/// `starling sub -F` and `mosquitto_sub -F`, subscribed side by side, print
/// the same bytes for the same messages.
#[test]
fn format_output_is_mosquitto_subs() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    let cases: [(&str, &[&str]); 4] = [
        ("mqttv311", &["-F", r"%t|%p|%q|%r|%l|%m|%x|%X|%-6l|%08l\n"]),
        (
            "mqttv5",
            &[
                "-F",
                r"%C|%D|%E|%F|%P|%R|%S|%A|%p",
                "-D",
                "subscribe",
                "subscription-identifier",
                "7",
            ],
        ),
        ("mqttv5", &["-F", "%J", "--pretty"]),
        ("mqttv311", &["-v", "-N"]),
    ];
    for (i, (version, format)) in cases.iter().enumerate() {
        let topic = format!("fmt/{i}/#");
        let ids = [format!("fmt-m{i}"), format!("fmt-s{i}")];
        let subs: Vec<_> = ids
            .iter()
            .map(|id| {
                let mut args = vec![
                    "-p", &port, "-V", version, "-t", &topic, "-q", "2", "-C", "3", "-i", id,
                ];
                args.extend_from_slice(format);
                let run = if id.starts_with("fmt-s") {
                    Run::starling("sub", &args)
                } else {
                    Run::mosquitto("mosquitto_sub", &args)
                };
                let running = run.spawn();
                broker.wait_log(&format!("Sending SUBACK to {id}\n"));
                running
            })
            .collect();
        let properties = [
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "correlation-data",
            "c\u{1}d",
            "-D",
            "publish",
            "message-expiry-interval",
            "3600",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "user-property",
            "k",
            "v w",
            "-D",
            "publish",
            "response-topic",
            "r/t",
        ];
        for (n, payload) in [r#"{"a":[1,2.5,"x"],"b":{"c":null}}"#, "plain \u{e9}", ""]
            .iter()
            .enumerate()
        {
            let mut args = vec![
                "-p".to_owned(),
                port.clone(),
                "-V".into(),
                (*version).into(),
                "-t".into(),
                format!("fmt/{i}/{n}"),
                "-q".into(),
                n.to_string(),
            ];
            if payload.is_empty() {
                args.push("-n".into());
            } else {
                args.extend(["-m".into(), (*payload).into()]);
            }
            if *version == "mqttv5" {
                args.extend(properties.iter().map(|s| s.to_string()));
            }
            let done = Run::starling("pub", &args).run();
            assert_eq!(done.code, Some(0), "{done:?}");
        }
        let outputs: Vec<Done> = subs.into_iter().map(|s| s.wait()).collect();
        assert_eq!(outputs[0].code, Some(0), "{:?}", outputs[0]);
        assert_eq!(outputs[1].code, Some(0), "{:?}", outputs[1]);
        assert!(!outputs[0].stdout_bytes.is_empty());
        // %J shows the time each received the message: that may differ.
        let untimed = |bytes: &[u8]| -> String {
            String::from_utf8_lossy(bytes)
                .split_inclusive('\n')
                .map(|line| {
                    if line.contains("\"tst\":") {
                        "\"tst\": TIME\n"
                    } else {
                        line
                    }
                })
                .collect()
        };
        assert_eq!(
            untimed(&outputs[1].stdout_bytes),
            untimed(&outputs[0].stdout_bytes),
            "{version} {format:?}"
        );
        assert_eq!(outputs[1].stderr, outputs[0].stderr);
    }
}

/// `rr` sends the request with its response topic and the correlation data
/// given, prints the first message on the response topic; its `-d` lines are
/// mosquitto_rr's (plus the DISCONNECT mosquitto_rr does not send).
#[test]
fn rr_request_response_reads_as_mosquitto_rrs() {
    let broker = Broker::mosquitto("");
    let port = broker.port.to_string();
    let mut debug_lines = Vec::new();
    for ours in [false, true] {
        let responder = Run::mosquitto(
            "mosquitto_sub",
            [
                "-p",
                &port,
                "-V",
                "5",
                "-t",
                "req/#",
                "-C",
                "1",
                "-F",
                "%t|%R|%D|%p",
                "-i",
                "responder",
            ],
        )
        .spawn();
        broker.wait_log("Sending SUBACK to responder");
        let rr = Run::either(
            ours,
            "rr",
            [
                "-p",
                &port,
                "-t",
                "req/1",
                "-e",
                "resp/1",
                "-m",
                "ask",
                "-q",
                "1",
                "-d",
                "-i",
                "asker",
                "-D",
                "publish",
                "correlation-data",
                "c1",
            ],
        )
        .spawn();
        let request = responder.wait();
        assert_eq!(request.stdout, "req/1|resp/1|c1|ask\n");
        let answer = Run::mosquitto(
            "mosquitto_pub",
            [
                "-p",
                &port,
                "-V",
                "5",
                "-t",
                "resp/1",
                "-m",
                "answer",
                "-q",
                "1",
                "-D",
                "publish",
                "correlation-data",
                "c1",
            ],
        )
        .run();
        assert_eq!(answer.code, Some(0));
        let rr = rr.wait();
        assert_eq!(rr.code, Some(0), "{rr:?}");
        assert!(
            rr.stdout.ends_with("answer\n") || rr.stdout.contains("answer\n"),
            "{rr:?}"
        );
        debug_lines.push(rr.stdout);
    }
    assert_eq!(
        debug_lines[1],
        format!("{}Client asker sending DISCONNECT\n", debug_lines[0])
    );

    // -W: no answer comes; both time out the same way.
    for ours in [false, true] {
        let done = Run::either(
            ours,
            "rr",
            [
                "-p",
                &port,
                "-t",
                "req/2",
                "-e",
                "resp/none",
                "-m",
                "q",
                "-W",
                "1",
            ],
        )
        .run();
        assert_eq!((done.code, done.stderr.as_str()), (Some(27), "Timed out\n"));
    }

    // MQTT 3.1.1: no properties; the responder answers on the topic it knows.
    let rr = Run::starling(
        "rr",
        [
            "-p", &port, "-V", "311", "-t", "req/3", "-e", "resp/3", "-m", "q", "-v", "-W", "5",
            "-d",
        ],
    )
    .spawn();
    rr.wait_for("sending PUBLISH");
    Run::mosquitto("mosquitto_pub", ["-p", &port, "-t", "resp/3", "-m", "a3"]).run();
    let done = rr.wait();
    assert_eq!(done.code, Some(0), "{done:?}");
    assert!(done.stdout.contains("\nresp/3 a3\n"), "{done:?}");
}
