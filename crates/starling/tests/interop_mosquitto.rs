//! Debian's mosquitto_pub and mosquitto_sub (2.0.11) against `starling broker`.
//!
//! Every scenario runs twice in the same test: first against Debian's own
//! `mosquitto`, whose session gives the expected lines, then against
//! Starling. Each client's output (`-d` debug lines and payloads, client ids
//! masked) must be the same line for line. Checks written down by hand then
//! pin what the specification requires, so that the test also fails if the
//! reference itself changes.

#![cfg(unix)]

mod common;

use common::{
    assert_lines, is_subscribed, lines, mask_client_ids, mosquitto_pub, mosquitto_sub,
    without_client, Broker, Finished,
};

/// What each client of one run printed, by role, client ids masked.
type Transcript = Vec<(String, Vec<String>)>;

/// Runs `scenario` against Mosquitto, then against Starling, and asserts that
/// every client printed the same lines with both; returns Starling's run.
fn same_as_mosquitto(scenario: impl Fn(&Broker) -> Transcript) -> Transcript {
    let reference = scenario(&Broker::mosquitto());
    let broker = Broker::starling();
    let actual = scenario(&broker);
    let roles = |t: &Transcript| t.iter().map(|(role, _)| role.clone()).collect::<Vec<_>>();
    assert_eq!(
        roles(&reference),
        roles(&actual),
        "the scenario ran different clients"
    );
    for ((role, expected), (_, got)) in reference.iter().zip(&actual) {
        assert_lines(
            &format!("{role}: Starling's session (actual) against Mosquitto's (expected)"),
            expected,
            got,
        );
    }
    actual
}

/// A client's output as the transcript keeps it: stdout with client ids
/// masked, then stderr (normally empty) marked as such.
fn transcript(finished: &Finished) -> Vec<String> {
    let mut out = mask_client_ids(&finished.stdout);
    out.extend(finished.stderr.iter().map(|line| format!("stderr| {line}")));
    out
}

/// The lines of `role` in a transcript.
fn of<'a>(session: &'a Transcript, role: &str) -> &'a [String] {
    &session
        .iter()
        .find(|(r, _)| r == role)
        .unwrap_or_else(|| panic!("no client {role} in the transcript"))
        .1
}

fn assert_has(role: &str, lines: &[String], line: &str) {
    assert!(
        lines.iter().any(|l| l == line),
        "{role} did not print {line:?}; it printed:\n{}",
        lines.join("\n")
    );
}

/// The lines that are neither debug lines nor the SUBACK report: payloads.
fn payloads(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| !l.starts_with("Client ") && !is_subscribed(l))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Exactly once, the session of "MQTT Essentials" ("Working with exactly once
// delivery"): a QoS 2 subscription to sensors/drone03/# and a QoS 2 publish.

fn exactly_once(version: &'static str) -> impl Fn(&Broker) -> Transcript {
    move |broker| {
        let sub = mosquitto_sub(
            broker,
            &[
                "-V",
                version,
                "-t",
                "sensors/drone03/#",
                "-q",
                "2",
                "-d",
                "-C",
                "1",
            ],
        );
        sub.wait_for_stdout("the SUBACK", is_subscribed);
        let publisher = mosquitto_pub(
            broker,
            &[
                "-V",
                version,
                "-t",
                "sensors/drone03/speed/rotor/1",
                "-m",
                "362 f",
                "-q",
                "2",
                "-d",
            ],
        );
        let subscriber = sub.wait().success();
        vec![
            ("mosquitto_pub".into(), transcript(&publisher)),
            ("mosquitto_sub".into(), transcript(&subscriber)),
        ]
    }
}

/// The book's lines in mosquitto 2.0.11's wording (the book shows 1.4's: no
/// CONNACK code, "PUBREL (Mid: 1)", and the payload printed before PUBCOMP).
///
/// Publisher: the server answers PUBLISH QoS 2 with PUBREC and PUBREL with
/// PUBCOMP, each with the packet id it acknowledges (3.1.1 [MQTT-4.3.3-2],
/// [MQTT-2.3.1-6]; 5.0 section 4.3.3). Subscriber: the SUBACK grants QoS 2
/// (3.1.1 [MQTT-3.8.4-5]), the message goes out at min(published, granted)
/// = 2 (3.1.1 [MQTT-3.8.4-6], 5.0 [MQTT-3.8.4-8]), RETAIN 0 as it matched
/// an established subscription (3.1.1 [MQTT-3.3.1-9], 5.0 [MQTT-3.3.1-12]),
/// and the server, now the sender, sends it with DUP 0 and releases it with
/// PUBREL after the client's PUBREC (3.1.1 [MQTT-4.3.3-1]).
fn assert_book_session(session: &Transcript) {
    assert_lines(
        "mosquitto_pub, against the book's session",
        &lines(&[
            "sending CONNECT",
            "received CONNACK (0)",
            "sending PUBLISH (d0, q2, r0, m1, 'sensors/drone03/speed/rotor/1', ... (5 bytes))",
            "received PUBREC (Mid: 1)",
            "sending PUBREL (m1)",
            "received PUBCOMP (Mid: 1, RC:0)",
            "sending DISCONNECT",
        ]),
        &without_client(of(session, "mosquitto_pub")),
    );
    assert_lines(
        "mosquitto_sub, against the book's session",
        &lines(&[
            "sending CONNECT",
            "received CONNACK (0)",
            "sending SUBSCRIBE (Mid: 1, Topic: sensors/drone03/#, QoS: 2, Options: 0x00)",
            "received SUBACK",
            "Subscribed (mid: 1): 2",
            "received PUBLISH (d0, q2, r0, m1, 'sensors/drone03/speed/rotor/1', ... (5 bytes))",
            "sending PUBREC (m1, rc0)",
            "received PUBREL (Mid: 1)",
            "sending PUBCOMP (m1)",
            "362 f",
            "sending DISCONNECT",
        ]),
        &without_client(of(session, "mosquitto_sub")),
    );
}

#[test]
fn exactly_once_v311_session_of_mqtt_essentials() {
    let session = same_as_mosquitto(exactly_once("mqttv311"));
    assert_book_session(&session);
}

#[test]
fn exactly_once_v5_session_of_mqtt_essentials() {
    let session = same_as_mosquitto(exactly_once("mqttv5"));
    assert_book_session(&session);
    // The v5 clients connect with an empty id and print the one the server
    // assigns from CONNACK on ([MQTT-3.2.2-16]): "(null)" is <id0>, the
    // assigned one <id1>.
    for role in ["mosquitto_pub", "mosquitto_sub"] {
        let lines = of(&session, role);
        assert_eq!(lines[0], "Client <id0> sending CONNECT", "{role}");
        assert_eq!(lines[1], "Client <id1> received CONNACK (0)", "{role}");
    }
}

// ---------------------------------------------------------------------------
// QoS 0 and 1 for MQTT 3.1, 3.1.1 and 5.0.

fn pub_sub(version: &'static str, qos: u8) -> impl Fn(&Broker) -> Transcript {
    move |broker| {
        let topic = format!("interop/{version}/q{qos}");
        let qos = qos.to_string();
        let sub = mosquitto_sub(
            broker,
            &[
                "-V", version, "-t", &topic, "-q", &qos, "-d", "-C", "1", "-v",
            ],
        );
        sub.wait_for_stdout("the SUBACK", is_subscribed);
        let publisher = mosquitto_pub(
            broker,
            &["-V", version, "-t", &topic, "-m", "hello", "-q", &qos, "-d"],
        );
        let subscriber = sub.wait().success();
        vec![
            ("mosquitto_pub".into(), transcript(&publisher)),
            ("mosquitto_sub".into(), transcript(&subscriber)),
        ]
    }
}

fn qos0_and_qos1(version: &'static str) {
    let topic = |qos: u8| format!("interop/{version}/q{qos}");

    // QoS 0: no acknowledgement, and no packet id (printed as m0 when
    // received) ([MQTT-2.3.1-5] of 3.1.1).
    let session = same_as_mosquitto(pub_sub(version, 0));
    let publisher = of(&session, "mosquitto_pub");
    assert!(
        !publisher.iter().any(|l| l.contains("PUBACK")),
        "{publisher:?}"
    );
    let sub = without_client(of(&session, "mosquitto_sub"));
    let t = topic(0);
    assert_has("mosquitto_sub", &sub, "Subscribed (mid: 1): 0");
    assert_has(
        "mosquitto_sub",
        &sub,
        &format!("received PUBLISH (d0, q0, r0, m0, '{t}', ... (5 bytes))"),
    );
    assert_eq!(
        payloads(of(&session, "mosquitto_sub")),
        [format!("{t} hello")]
    );

    // QoS 1: PUBACK with the PUBLISH's packet id, both ways (3.1.1
    // [MQTT-4.3.2-2]; the server as sender, [MQTT-4.3.2-1]).
    let session = same_as_mosquitto(pub_sub(version, 1));
    let t = topic(1);
    let publisher = without_client(of(&session, "mosquitto_pub"));
    assert_has(
        "mosquitto_pub",
        &publisher,
        "received PUBACK (Mid: 1, RC:0)",
    );
    let sub = without_client(of(&session, "mosquitto_sub"));
    assert_has("mosquitto_sub", &sub, "Subscribed (mid: 1): 1");
    assert_has(
        "mosquitto_sub",
        &sub,
        &format!("received PUBLISH (d0, q1, r0, m1, '{t}', ... (5 bytes))"),
    );
    assert_has("mosquitto_sub", &sub, "sending PUBACK (m1, rc0)");
    assert_eq!(
        payloads(of(&session, "mosquitto_sub")),
        [format!("{t} hello")]
    );
}

#[test]
fn qos0_and_qos1_v31() {
    qos0_and_qos1("mqttv31");
}

#[test]
fn qos0_and_qos1_v311() {
    qos0_and_qos1("mqttv311");
}

#[test]
fn qos0_and_qos1_v5() {
    qos0_and_qos1("mqttv5");
}

// ---------------------------------------------------------------------------
// Retained messages: stored, sent to a later subscriber, cleared by an empty
// retained message.

fn retained(version: &'static str) -> impl Fn(&Broker) -> Transcript {
    move |broker| {
        let topic = format!("retained/{version}");
        let sentinel = format!("{topic}/sentinel");
        let set = mosquitto_pub(
            broker,
            &[
                "-V", version, "-t", &topic, "-m", "kept", "-q", "1", "-r", "-d",
            ],
        );
        let later = mosquitto_sub(
            broker,
            &["-V", version, "-t", &topic, "-C", "1", "-v", "-d"],
        )
        .wait()
        .success();
        let clear = mosquitto_pub(broker, &["-V", version, "-t", &topic, "-r", "-n", "-d"]);
        // After the clear, a subscriber to the topic and to a sentinel topic:
        // a retained message would come right after the SUBACK, so the first
        // message it receives is the sentinel published after its SUBACK
        // only if nothing is retained any more.
        let sub = mosquitto_sub(
            broker,
            &[
                "-V", version, "-t", &topic, "-t", &sentinel, "-C", "1", "-v", "-d",
            ],
        );
        sub.wait_for_stdout("the SUBACK", is_subscribed);
        let live = mosquitto_pub(
            broker,
            &["-V", version, "-t", &sentinel, "-m", "live", "-d"],
        );
        let after_clear = sub.wait().success();
        vec![
            ("mosquitto_pub -r".into(), transcript(&set)),
            ("mosquitto_sub (later)".into(), transcript(&later)),
            ("mosquitto_pub -r -n".into(), transcript(&clear)),
            (
                "mosquitto_sub (after the clear)".into(),
                transcript(&after_clear),
            ),
            ("mosquitto_pub (sentinel)".into(), transcript(&live)),
        ]
    }
}

fn assert_retained(version: &str, session: &Transcript) {
    let topic = format!("retained/{version}");
    // Stored (3.1.1 [MQTT-3.3.1-5], 5.0 [MQTT-3.3.1-5]) and sent to the new
    // subscription (3.1.1 [MQTT-3.3.1-6], 5.0 [MQTT-3.3.1-9]) with RETAIN 1
    // (3.1.1 [MQTT-3.3.1-8]), at the subscription's QoS 0.
    let later = without_client(of(session, "mosquitto_sub (later)"));
    assert_has(
        "mosquitto_sub (later)",
        &later,
        &format!("received PUBLISH (d0, q0, r1, m0, '{topic}', ... (4 bytes))"),
    );
    assert_eq!(
        payloads(of(session, "mosquitto_sub (later)")),
        [format!("{topic} kept")]
    );
    // The empty retained message removed it (3.1.1 [MQTT-3.3.1-10],
    // [MQTT-3.3.1-11]; 5.0 [MQTT-3.3.1-6], [MQTT-3.3.1-7]).
    assert_eq!(
        payloads(of(session, "mosquitto_sub (after the clear)")),
        [format!("{topic}/sentinel live")]
    );
}

#[test]
fn retained_set_delivered_and_cleared_v31() {
    let session = same_as_mosquitto(retained("mqttv31"));
    assert_retained("mqttv31", &session);
}

#[test]
fn retained_set_delivered_and_cleared_v311() {
    let session = same_as_mosquitto(retained("mqttv311"));
    assert_retained("mqttv311", &session);
}

#[test]
fn retained_set_delivered_and_cleared_v5() {
    let session = same_as_mosquitto(retained("mqttv5"));
    assert_retained("mqttv5", &session);
}

// ---------------------------------------------------------------------------
// A persistent session: subscribe with -c, leave, messages arrive while away,
// come back with the same id and get them.

fn persistent_session(version: &'static str) -> impl Fn(&Broker) -> Transcript {
    move |broker| {
        let topic = format!("persist/{version}");
        let session = [
            "-V", version, "-c", "-i", "fixed-id", "-q", "1", "-t", &topic, "-d",
        ];
        let subscribe = mosquitto_sub(broker, &[&session[..], &["-E"]].concat())
            .wait()
            .success();
        let mut out = vec![("mosquitto_sub -c -E".to_owned(), transcript(&subscribe))];
        for message in ["m1", "m2", "m3"] {
            let publisher = mosquitto_pub(
                broker,
                &["-V", version, "-t", &topic, "-m", message, "-q", "1", "-d"],
            );
            out.push((format!("mosquitto_pub {message}"), transcript(&publisher)));
        }
        let resume = mosquitto_sub(broker, &[&session[..], &["-C", "3"]].concat())
            .wait()
            .success();
        out.push(("mosquitto_sub -c -C 3".to_owned(), transcript(&resume)));
        out
    }
}

/// The session outlived the connection and kept the QoS 1 messages that
/// matched its subscription (3.1.1 [MQTT-3.1.2-4], [MQTT-3.1.2-5]; 5.0
/// [MQTT-3.1.2-23] with the clients' Session Expiry Interval), delivered on
/// reconnection in the order they were published ([MQTT-4.6.0-6] of 3.1.1).
fn assert_resumed(version: &str, session: &Transcript) {
    let topic = format!("persist/{version}");
    assert_eq!(
        payloads(of(session, "mosquitto_sub -c -C 3")),
        ["m1", "m2", "m3"]
    );
    let resumed = without_client(of(session, "mosquitto_sub -c -C 3"));
    for (mid, line) in (1..).zip(resumed.iter().filter(|l| l.starts_with("received PUBLISH"))) {
        assert_eq!(
            line,
            &format!("received PUBLISH (d0, q1, r0, m{mid}, '{topic}', ... (2 bytes))")
        );
    }
}

#[test]
fn persistent_session_gets_messages_queued_while_away_v311() {
    let session = same_as_mosquitto(persistent_session("mqttv311"));
    assert_resumed("mqttv311", &session);
}

#[test]
fn persistent_session_gets_messages_queued_while_away_v5() {
    let session = same_as_mosquitto(persistent_session("mqttv5"));
    assert_resumed("mqttv5", &session);
}

// ---------------------------------------------------------------------------
// Will: a client killed with SIGKILL (no DISCONNECT) has its will published.

fn will(version: &'static str) -> impl Fn(&Broker) -> Transcript {
    move |broker| {
        let watcher = mosquitto_sub(
            broker,
            &["-V", version, "-t", "w", "-q", "1", "-C", "1", "-v", "-d"],
        );
        watcher.wait_for_stdout("the SUBACK", is_subscribed);
        let victim = mosquitto_sub(
            broker,
            &[
                "-V",
                version,
                "-t",
                "x",
                "-d",
                "--will-topic",
                "w",
                "--will-payload",
                "bye",
                "--will-qos",
                "1",
            ],
        );
        // Its SUBACK shows the CONNECT (and its will) was accepted.
        victim.wait_for_stdout("the SUBACK", is_subscribed);
        let victim = victim.kill();
        let watcher = watcher.wait().success();
        vec![
            (
                "mosquitto_sub --will-topic w (killed)".into(),
                transcript(&victim),
            ),
            ("mosquitto_sub -t w".into(), transcript(&watcher)),
        ]
    }
}

/// The connection closed without DISCONNECT, so the will is published
/// (3.1.1 [MQTT-3.1.2-8], 5.0 [MQTT-3.1.2-8]) at its QoS 1.
fn assert_will(session: &Transcript) {
    let watcher = without_client(of(session, "mosquitto_sub -t w"));
    assert_has(
        "mosquitto_sub -t w",
        &watcher,
        "received PUBLISH (d0, q1, r0, m1, 'w', ... (3 bytes))",
    );
    assert_eq!(payloads(of(session, "mosquitto_sub -t w")), ["w bye"]);
}

#[test]
fn will_published_when_client_is_killed_v31() {
    assert_will(&same_as_mosquitto(will("mqttv31")));
}

#[test]
fn will_published_when_client_is_killed_v311() {
    assert_will(&same_as_mosquitto(will("mqttv311")));
}

#[test]
fn will_published_when_client_is_killed_v5() {
    assert_will(&same_as_mosquitto(will("mqttv5")));
}

// ---------------------------------------------------------------------------
// MQTT 5 PUBLISH properties set with -D and shown by mosquitto_sub -F.

const FORMAT: &str = "%t|%q|%r|%P|%C|%R|%D|%F|%E|%S|%A|%p";

fn v5_properties(broker: &Broker) -> Transcript {
    let sub = mosquitto_sub(
        broker,
        &[
            "-V",
            "mqttv5",
            "-t",
            "props/#",
            "-q",
            "1",
            "-C",
            "1",
            "-d",
            "-F",
            FORMAT,
            "-D",
            "subscribe",
            "subscription-identifier",
            "7",
        ],
    );
    sub.wait_for_stdout("the SUBACK", is_subscribed);
    let publisher = mosquitto_pub(
        broker,
        &[
            "-V",
            "mqttv5",
            "-t",
            "props/t",
            "-m",
            "hi",
            "-q",
            "1",
            "-d",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "user-property",
            "k",
            "v2",
            "-D",
            "publish",
            "user-property",
            "a",
            "b",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "props/reply",
            "-D",
            "publish",
            "correlation-data",
            "abc",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "message-expiry-interval",
            "100",
            "-D",
            "publish",
            "topic-alias",
            "1",
        ],
    );
    let subscriber = sub.wait().success();
    let mut lines = transcript(&subscriber);
    // The Message Expiry Interval goes out as the received value minus the
    // time the message waited in the server ([MQTT-3.3.2-6]): 100, or 99 if
    // a second boundary passed. Checked, then masked for the comparison.
    for line in &mut lines {
        let mut fields: Vec<String> = line.split('|').map(str::to_owned).collect();
        if fields.len() == 12 {
            let expiry: u32 = fields[8]
                .parse()
                .unwrap_or_else(|_| panic!("%E in {line:?}"));
            assert!(
                (99..=100).contains(&expiry),
                "Message Expiry Interval in {line:?}"
            );
            fields[8] = "<expiry>".into();
            *line = fields.join("|");
        }
    }
    vec![
        ("mosquitto_sub -F".into(), lines),
        ("mosquitto_pub -D".into(), transcript(&publisher)),
    ]
}

#[test]
fn v5_publish_properties_are_forwarded() {
    let session = same_as_mosquitto(v5_properties);
    let sub = of(&session, "mosquitto_sub -F");
    // Topic, QoS 1, RETAIN 0; the user properties unaltered and in order
    // ([MQTT-3.3.2-17], [MQTT-3.3.2-18]), content type ([MQTT-3.3.2-20]),
    // response topic ([MQTT-3.3.2-15]), correlation data ([MQTT-3.3.2-16]),
    // payload format indicator ([MQTT-3.3.2-4]), the expiry (checked above),
    // the subscription identifier of the matching subscription
    // ([MQTT-3.3.4-3]); the publisher's topic alias is its connection's own
    // and is not forwarded (section 3.3.2.3.4), the payload is.
    assert_eq!(
        payloads(sub),
        ["props/t|1|0|k:v k:v2 a:b|text/plain|props/reply|abc|1|<expiry>|7||hi"]
    );
}
