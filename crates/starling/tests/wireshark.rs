//! Wireshark's MQTT dissector reads Starling's packets: a capture (`tshark
//! -i lo`) of a short MQTT 3.1.1 and 5.0 session with the Mosquitto clients,
//! decoded as MQTT, holds every packet type of the session and not one
//! malformed packet or expert-info error.
//!
//! Capturing needs root or capture rights (dumpcap's capabilities); the test
//! machine and CI run as root.

#![cfg(unix)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{is_subscribed, mosquitto_pub, mosquitto_sub, tool, Broker, Peer, Scratch, WAIT};

/// One version's session: a QoS 2 subscriber, publishes at QoS 0, 1 and 2
/// and a retained one, a later subscriber that gets the retained message,
/// and the retained message cleared. Returns how many clients it ran (each
/// ends with DISCONNECT).
fn session(broker: &Broker, version: &str) -> usize {
    let prefix = format!("ws/{version}");
    let all = format!("{prefix}/#");
    let sub = mosquitto_sub(
        broker,
        &["-V", version, "-t", &all, "-q", "2", "-C", "4", "-d"],
    );
    sub.wait_for_stdout("the SUBACK", is_subscribed);
    for qos in ["0", "1", "2"] {
        let topic = format!("{prefix}/q{qos}");
        mosquitto_pub(
            broker,
            &["-V", version, "-t", &topic, "-m", "hello", "-q", qos],
        );
    }
    let retained = format!("{prefix}/retained");
    mosquitto_pub(
        broker,
        &[
            "-V", version, "-t", &retained, "-m", "kept", "-q", "1", "-r",
        ],
    );
    let sub = sub.wait().success();
    assert_eq!(
        sub.stdout.iter().filter(|l| *l == "hello").count(),
        3,
        "{sub}"
    );
    let later = mosquitto_sub(broker, &["-V", version, "-t", &retained, "-C", "1", "-d"])
        .wait()
        .success();
    assert!(later.stdout.iter().any(|l| l == "kept"), "{later}");
    mosquitto_pub(broker, &["-V", version, "-t", &retained, "-r", "-n"]);
    7
}

/// tshark prints "Capturing on" before dumpcap has the interface open:
/// packets sent right after it are not always in the capture. So the test
/// opens bare TCP connections to the broker (no MQTT in them) until the live
/// summary shows one: from then on, every packet is captured.
fn wait_until_captured(capture: &Peer, broker: &Broker) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, broker.port()));
    let deadline = Instant::now() + WAIT;
    // "42674 → 36697 [SYN]": a connection opened to the broker's port.
    let probe = format!(" {} [SYN]", broker.port());
    while Instant::now() < deadline {
        drop(TcpStream::connect(addr).expect("cannot connect to the broker"));
        if capture.stdout_within(Duration::from_millis(200), |line| line.contains(&probe)) {
            return;
        }
    }
    capture.wait_for_stdout("a probe connection in the capture", |line| {
        line.contains(&probe)
    });
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn wireshark_decodes_a_v311_and_v5_session_without_errors() {
    let tshark = tool("tshark");
    let broker = Broker::starling();
    let port = broker.port();
    let scratch = Scratch::new("wireshark");
    let file = scratch.path("session.pcapng");
    let file = file.to_str().expect("UTF-8 path");
    let filter = format!("tcp port {port}");
    let decode_as = format!("tcp.port=={port},mqtt");

    // -P -l: a summary line per packet as it is captured, which tells when
    // the last packet is in the file.
    let capture = Peer::spawn(
        &tshark,
        &[
            "-i", "lo", "-f", &filter, "-w", file, "-P", "-l", "-d", &decode_as,
        ],
    );
    capture.wait_for_stderr(
        "tshark to start capturing (it needs root or capture rights)",
        |line| line.contains("Capturing on 'Loopback: lo'"),
    );
    wait_until_captured(&capture, &broker);

    let clients = session(&broker, "mqttv311") + session(&broker, "mqttv5");

    // Every client's DISCONNECT has been captured before capturing stops.
    capture.wait_for_output(&format!("{clients} DISCONNECTs in the capture"), |lines| {
        let seen: usize = lines
            .iter()
            .map(|l| l.matches("Disconnect Req").count())
            .sum();
        (seen >= clients).then_some(())
    });
    let capture = capture.interrupt();

    let decoded = Peer::spawn(&tshark, &["-r", file, "-d", &decode_as, "-V"])
        .wait()
        .success();
    let text = decoded.stdout.join("\n");
    let context = || {
        format!(
            "capture: {}\n{capture}\ndecoded (kept in {file} if the test fails):\n{}",
            capture.status,
            decoded
                .stdout
                .iter()
                .filter(|l| l.contains("Message Type:"))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        )
    };

    // The packets of the session, one line each in the dissector's tree:
    // 14 clients connect and disconnect; 2 subscribers per version; per
    // version 10 PUBLISH (4 in, 4 forwarded, the retained one to the later
    // subscriber, the clear), 4 PUBACK (QoS 1 and the retained QoS 1, both
    // legs) and one QoS 2 exchange each way.
    let expected = [
        ("Connect Command (1)", clients),
        ("Connect Ack (2)", clients),
        ("Publish Message (3)", 20),
        ("Publish Ack (4)", 8),
        ("Publish Received (5)", 4),
        ("Publish Release (6)", 4),
        ("Publish Complete (7)", 4),
        ("Subscribe Request (8)", 4),
        ("Subscribe Ack (9)", 4),
        ("Disconnect Req (14)", clients),
    ];
    for (packet, n) in expected {
        let found = count(&text, &format!("= Message Type: {packet}"));
        assert_eq!(
            found,
            n,
            "{packet}: {found} in the capture, expected {n}\n{}",
            context()
        );
    }
    assert_eq!(
        count(&text, "Version: MQTT v3.1.1 (4)"),
        clients / 2,
        "{}",
        context()
    );
    assert_eq!(
        count(&text, "Version: MQTT v5.0 (5)"),
        clients / 2,
        "{}",
        context()
    );

    // Nothing the dissector could not parse or found wrong.
    for line in &decoded.stdout {
        let lower = line.to_lowercase();
        assert!(
            !lower.contains("malformed")
                && !line.contains("[Expert Info (Error/")
                && !line.contains("[Expert Info (Warning/"),
            "the dissector reports: {line}\n{}",
            context()
        );
    }
}
