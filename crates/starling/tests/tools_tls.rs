//! `starling pub`, `sub` and `rr` over TLS with Mosquitto's flags, next to
//! mosquitto_pub and mosquitto_sub 2.0.11: messages flow between our tools and
//! Mosquitto's through `starling broker` and Debian's `mosquitto`, both with TLS
//! listeners that require client certificates; the `-d` lines are the same; a
//! broker certificate that does not verify, an unusable CA file and a client
//! certificate the broker rejects end in one line with Mosquitto's words and
//! status; `--insecure`, `--tls-version`, `mqtts://` URLs and the system's CAs
//! (`SSL_CERT_FILE`, read by both OpenSSL and our client) work as in Mosquitto;
//! OpenSSL engines are refused in one line.
//!
//! Certificates are made by `openssl` for each test (tests/pki of the broker
//! crate). A missing tool fails the test, naming scripts/test.

#![cfg(unix)]

mod common;
#[path = "../../starling-broker/tests/common/pki.rs"]
mod pki;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::tools::{as_starling, Broker, Done, Kind, Run, Running};
use pki::{Issued, Pki};

/// Mosquitto's two ways of reporting a handshake that fails: inside
/// `mosquitto_connect()` or in the network loop after it, depending on how
/// fast the broker answers. Ours is always the second.
const CONNECT_TLS_ERROR: (&str, Option<i32>) =
    ("Unable to connect (A TLS error occurred.).\n", Some(1));
const LOOP_TLS_ERROR: (&str, Option<i32>) = ("Error: A TLS error occurred.\n", Some(8));
const LOST: (&str, Option<i32>) = ("Error: The connection was lost.\n", Some(7));

/// The test PKI, plus a server certificate for `elsewhere.example` only, all
/// readable by Debian's mosquitto (which, started as root, drops to its own user).
struct Certs {
    pki: Pki,
    elsewhere: Issued,
}

impl Certs {
    fn new(label: &str) -> Certs {
        let pki = Pki::new(label);
        fs::write(
            pki.path("elsewhere.ext"),
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = DNS:elsewhere.example\n",
        )
        .unwrap();
        pki.openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "elsewhere.key",
        ]);
        pki.openssl(&[
            "req",
            "-new",
            "-config",
            "ca.cnf",
            "-key",
            "elsewhere.key",
            "-out",
            "elsewhere.csr",
            "-subj",
            "/CN=elsewhere.example",
        ]);
        pki.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            "ca.cnf",
            "-extfile",
            "elsewhere.ext",
            "-in",
            "elsewhere.csr",
            "-out",
            "elsewhere.pem",
        ]);
        fs::set_permissions(pki.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        for entry in fs::read_dir(pki.dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let elsewhere = Issued {
            cert: pki.path("elsewhere.pem"),
            key: pki.path("elsewhere.key"),
        };
        Certs { pki, elsewhere }
    }

    /// A TLS listener's lines: `server`'s certificate, the test CA, and client
    /// certificates required or not.
    fn listener(&self, server: &Issued, require_certificate: bool) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\n",
            text(&self.pki.ca()),
            text(&server.cert),
            text(&server.key)
        )
    }

    /// A broker of `kind` with a TLS listener.
    fn broker(&self, kind: Kind, server: &Issued, require_certificate: bool) -> Broker {
        let listener = self.listener(server, require_certificate);
        match kind {
            Kind::Starling => Broker::starling_with(&listener),
            Kind::Mosquitto => Broker::mosquitto(&listener),
        }
    }

    /// `-h 127.0.0.1 -p PORT --cafile CA [--cert C --key K]`.
    fn args(&self, broker: &Broker, ca: &Path, client: Option<&Issued>) -> Vec<String> {
        let mut args = vec![
            "-h".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            broker.port.to_string(),
            "--cafile".to_owned(),
            text(ca),
        ];
        if let Some(client) = client {
            args.extend([
                "--cert".to_owned(),
                text(&client.cert),
                "--key".to_owned(),
                text(&client.key),
            ]);
        }
        args
    }

    /// Trusting the test CA, as alice.
    fn alice(&self, broker: &Broker) -> Vec<String> {
        self.args(broker, &self.pki.ca(), Some(&self.pki.alice()))
    }
}

fn text(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let mut all = base.to_vec();
    all.extend(more.iter().map(|s| s.to_string()));
    all
}

/// `sub` (ours or Mosquitto's) with `-d`, returned once subscribed.
fn subscribed(ours: bool, args: &[String]) -> Running {
    let mut all = args.to_vec();
    all.push("-d".to_owned());
    let running = if ours {
        Run::starling("sub", &all)
    } else {
        Run::mosquitto_line_buffered("mosquitto_sub", &all)
    }
    .spawn();
    running.wait_for("received SUBACK");
    running
}

/// stderr and status.
fn outcome(done: &Done) -> (&str, Option<i32>) {
    (done.stderr.as_str(), done.code)
}

/// One of Mosquitto's outcomes for a client certificate the broker rejects:
/// the alert read in the network loop, or (less often) while it reads CONNACK.
fn certificate_rejected(done: &Done) -> bool {
    let got = outcome(done);
    got == LOST || got == ("Error: Protocol error\n", Some(1))
}

/// One of Mosquitto's outcomes for a handshake that fails.
fn handshake_failed(done: &Done) -> bool {
    let got = outcome(done);
    got == CONNECT_TLS_ERROR || got == LOOP_TLS_ERROR
}

#[test]
fn messages_flow_over_tls_with_client_certificates_both_ways() {
    let certs = Certs::new("tools-flow");
    for kind in [Kind::Starling, Kind::Mosquitto] {
        let broker = certs.broker(kind, &certs.pki.server(), true);
        let tls = certs.alice(&broker);
        for (n, (sub_ours, pub_ours)) in
            [(true, true), (true, false), (false, true), (false, false)]
                .into_iter()
                .enumerate()
        {
            let topic = format!("tls/{n}");
            let payload = format!("hello {n} over TLS");
            let sub = subscribed(
                sub_ours,
                &with(&tls, &["-t", "tls/#", "-C", "1", "-v", "-q", "1"]),
            );
            let publish = Run::either(
                pub_ours,
                "pub",
                with(&tls, &["-t", &topic, "-m", &payload, "-q", "1"]),
            )
            .run();
            assert_eq!(publish.code, Some(0), "{kind:?} {n}: {publish:?}");
            let received = sub.wait();
            assert_eq!(received.code, Some(0), "{kind:?} {n}: {received:?}");
            assert!(
                received.stdout.contains(&format!("\n{topic} {payload}\n")),
                "{kind:?} {n}: {received:?}"
            );
        }
        // Without a client certificate the broker ends the connection after
        // the (TLS 1.3) handshake: the connection is lost, as mosquitto_pub says.
        let no_cert = certs.args(&broker, &certs.pki.ca(), None);
        let args = with(&no_cert, &["-t", "tls/x", "-m", "x"]);
        let ours = Run::starling("pub", &args).run();
        assert_eq!(outcome(&ours), LOST, "{kind:?}: {ours:?}");
        if kind == Kind::Mosquitto {
            let theirs = Run::mosquitto("mosquitto_pub", &args).run();
            assert!(certificate_rejected(&theirs), "{theirs:?}");
        }
    }
}

#[test]
fn debug_lines_are_mosquittos_over_tls() {
    let certs = Certs::new("tools-debug");
    let broker = certs.broker(Kind::Mosquitto, &certs.pki.server(), true);
    let tls = certs.alice(&broker);
    for extra in [
        &["-q", "1"][..],
        &["-q", "2", "-V", "mqttv5"],
        &["--tls-version", "tlsv1.3", "--tls-alpn", "mqtt"],
    ] {
        let mut args = with(&tls, &["-d", "-i", "ID", "-t", "dbg/x", "-m", "hi"]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let theirs = Run::mosquitto("mosquitto_pub", &args).run();
        let ours = Run::starling("pub", &args).run();
        assert_eq!(ours.code, Some(0), "{ours:?}");
        assert_eq!(ours.code, theirs.code, "{extra:?}");
        assert_eq!(ours.stdout, theirs.stdout, "{extra:?}");
        assert!(
            ours.stdout.contains("Client ID sending PUBLISH (d0, q"),
            "{ours:?}"
        );
    }
    // sub: a retained message, then the same lines up to the DISCONNECT.
    let retain = with(&tls, &["-t", "dbg/r", "-m", "kept", "-r", "-q", "1"]);
    assert_eq!(Run::mosquitto("mosquitto_pub", &retain).run().code, Some(0));
    let args = with(
        &tls,
        &["-d", "-i", "SUB", "-t", "dbg/r", "-C", "1", "-v", "-q", "1"],
    );
    let theirs = Run::mosquitto("mosquitto_sub", &args).run();
    let ours = Run::starling("sub", &args).run();
    assert_eq!(ours.code, Some(0), "{ours:?}");
    assert_eq!(ours.stdout, theirs.stdout);
    assert!(ours.stdout.contains("dbg/r kept\n"), "{ours:?}");
}

#[test]
fn a_failed_handshake_is_one_line_as_mosquitto_says_it() {
    let certs = Certs::new("tools-fail");
    let broker = certs.broker(Kind::Mosquitto, &certs.pki.server(), true);
    // The broker's certificate is not from the CA given.
    let wrong_ca = certs.args(&broker, &certs.pki.new_ca(), Some(&certs.pki.alice()));
    for tool in ["pub", "sub", "rr"] {
        let mut args = with(&wrong_ca, &["-t", "fail/x"]);
        match tool {
            "pub" => args.extend(["-m".to_owned(), "x".to_owned()]),
            "rr" => args.extend(["-m", "x", "-e", "fail/r"].map(String::from)),
            _ => {}
        }
        let theirs = Run::either(false, tool, &args).run();
        assert!(handshake_failed(&theirs), "mosquitto_{tool}: {theirs:?}");
        let ours = Run::starling(tool, &args).run();
        assert_eq!(outcome(&ours), LOOP_TLS_ERROR, "{tool}: {ours:?}");
        assert_eq!(ours.stdout, "", "{tool}");
        // With -d, the reason first, on stdout.
        args.push("-d".to_owned());
        let ours = Run::starling(tool, &args).run();
        assert_eq!(outcome(&ours), LOOP_TLS_ERROR, "{tool}: {ours:?}");
        assert!(
            ours.stdout
                .starts_with("Error: TLS: handshake with mqtts://127.0.0.1:")
                && ours.stdout.contains("certificate verify failed"),
            "{tool}: {ours:?}"
        );
    }
    // A client certificate from a CA the broker does not trust.
    let eve = certs.args(&broker, &certs.pki.ca(), Some(&certs.pki.untrusted()));
    let args = with(&eve, &["-t", "fail/x", "-m", "x"]);
    let ours = Run::starling("pub", &args).run();
    assert_eq!(outcome(&ours), LOST, "{ours:?}");
    let theirs = Run::mosquitto("mosquitto_pub", &args).run();
    assert!(certificate_rejected(&theirs), "{theirs:?}");
    // A CA file with no certificate: libmosquitto fails before any handshake,
    // always in the same words.
    let not_a_ca = certs.pki.path("ca.cnf");
    let args = with(
        &certs.args(&broker, &not_a_ca, None),
        &["-t", "fail/x", "-m", "x"],
    );
    let theirs = Run::mosquitto("mosquitto_pub", &args).run();
    let ours = Run::starling("pub", &args).run();
    assert_eq!(outcome(&theirs), CONNECT_TLS_ERROR, "{theirs:?}");
    assert_eq!(outcome(&ours), CONNECT_TLS_ERROR, "{ours:?}");
}

#[test]
fn insecure_skips_the_host_name_check_only() {
    let certs = Certs::new("tools-insecure");
    let broker = certs.broker(Kind::Mosquitto, &certs.elsewhere, false);
    let tls = certs.args(&broker, &certs.pki.ca(), None);
    let args = with(&tls, &["-t", "ins/x", "-m", "x"]);
    let ours = Run::starling("pub", &args).run();
    assert_eq!(outcome(&ours), LOOP_TLS_ERROR, "{ours:?}");
    assert!(handshake_failed(
        &Run::mosquitto("mosquitto_pub", &args).run()
    ));
    let insecure = with(&args, &["--insecure"]);
    for ours in [true, false] {
        let done = Run::either(ours, "pub", &insecure).run();
        assert_eq!(outcome(&done), ("", Some(0)), "ours: {ours}: {done:?}");
    }
    // The certificate must still come from a CA given.
    let other = certs.args(&broker, &certs.pki.new_ca(), None);
    let ours = Run::starling(
        "pub",
        with(&other, &["-t", "ins/x", "-m", "x", "--insecure"]),
    )
    .run();
    assert_eq!(outcome(&ours), LOOP_TLS_ERROR, "{ours:?}");
}

#[test]
fn mqtts_urls_port_8883_and_os_certs_trust_the_systems_cas() {
    let certs = Certs::new("tools-os");
    let broker = certs.broker(Kind::Mosquitto, &certs.pki.server(), false);
    let port = broker.port.to_string();
    let ca = text(&certs.pki.ca());
    let watcher = subscribed(
        false,
        &with(
            &certs.args(&broker, &certs.pki.ca(), None),
            &["-t", "os/#", "-C", "4", "-v"],
        ),
    );
    let url = format!("mqtts://127.0.0.1:{port}/os/url");
    let os_certs = [
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "--tls-use-os-certs",
        "-t",
        "os/flag",
    ];
    for ours in [true, false] {
        for args in [&["-L", &url][..], &os_certs] {
            let done = Run::either(ours, "pub", args.iter().chain(&["-m", "m"]))
                .env("SSL_CERT_FILE", &ca)
                .run();
            assert_eq!(
                outcome(&done),
                ("", Some(0)),
                "ours: {ours} {args:?}: {done:?}"
            );
        }
    }
    let seen = watcher.wait();
    assert_eq!(seen.stdout.matches("os/url m\n").count(), 2, "{seen:?}");
    assert_eq!(seen.stdout.matches("os/flag m\n").count(), 2, "{seen:?}");
    // Other system CAs: the handshake fails.
    let other = text(&certs.pki.new_ca());
    let ours = Run::starling("pub", ["-L", &url, "-m", "m"])
        .env("SSL_CERT_FILE", &other)
        .run();
    assert!(handshake_failed(&ours), "{ours:?}");
    // --insecure, --tls-version, --tls-alpn and --ciphers only shape TLS: alone,
    // the connection is plain MQTT, as in Mosquitto; an -L ws:// URL is refused.
    let plain = Broker::mosquitto("");
    let port = plain.port.to_string();
    let shaping = [
        "-p",
        &port,
        "-t",
        "plain/x",
        "-m",
        "x",
        "--insecure",
        "--tls-version",
        "tlsv1.1",
        "--tls-alpn",
        "mqtt",
        "--ciphers",
        "HIGH",
    ];
    for ours in [true, false] {
        let done = Run::either(ours, "pub", shaping).run();
        assert_eq!(outcome(&done), ("", Some(0)), "ours: {ours}: {done:?}");
    }
    let ws = format!("ws://127.0.0.1:{port}/x");
    let theirs = Run::mosquitto("mosquitto_pub", ["-L", &ws, "-m", "x"]).run();
    let ours = Run::starling("pub", ["-L", &ws, "-m", "x"]).run();
    assert_eq!(ours.stderr, as_starling(&theirs.stderr));
    assert_eq!((ours.code, theirs.code), (Some(1), Some(1)));
}

#[test]
fn tls_version_is_the_lowest_allowed() {
    let certs = Certs::new("tools-version");
    let listener = format!(
        "{}tls_version tlsv1.3\n",
        certs.listener(&certs.pki.server(), true)
    );
    let broker = Broker::starling_with(&listener);
    let tls = certs.alice(&broker);
    for version in ["tlsv1.3", "tlsv1.2", "tlsv1.1"] {
        for ours in [true, false] {
            let done = Run::either(
                ours,
                "pub",
                with(&tls, &["-t", "v/x", "-m", "x", "--tls-version", version]),
            )
            .run();
            assert_eq!(
                outcome(&done),
                ("", Some(0)),
                "{version} ours: {ours}: {done:?}"
            );
        }
    }
    // tlsv1 is not a version libmosquitto takes.
    let args = with(&tls, &["-t", "v/x", "-m", "x", "--tls-version", "tlsv1"]);
    let theirs = Run::mosquitto("mosquitto_pub", &args).run();
    let ours = Run::starling("pub", &args).run();
    assert_eq!(outcome(&ours), outcome(&theirs));
    assert_eq!(
        outcome(&ours),
        (
            "Error: Problem setting TLS options, check the options are valid.\n",
            Some(1)
        )
    );
}

#[test]
fn openssl_engines_are_refused_in_one_line() {
    let certs = Certs::new("tools-refused");
    let broker = certs.broker(Kind::Mosquitto, &certs.pki.server(), false);
    let tls = certs.args(&broker, &certs.pki.ca(), None);
    let alice = certs.pki.alice();
    let (cert, key) = (text(&alice.cert), text(&alice.key));
    let log_before = broker.log().len();
    let cases: [(Vec<String>, &str); 2] = [
        (
            with(&tls, &["--tls-engine", "pkcs11"]),
            "Error: --tls-engine is not supported: Starling's client loads no OpenSSL engines.\n",
        ),
        (
            with(
                &tls,
                &["--cert", &cert, "--key", &key, "--keyform", "engine"],
            ),
            "Error: --keyform engine is not supported: Starling's client loads no OpenSSL \
             engines.\n",
        ),
    ];
    for (args, message) in cases {
        for tool in ["pub", "sub", "rr"] {
            let mut all = with(&args, &["-t", "r/x", "-d"]);
            match tool {
                "pub" => all.extend(["-m".to_owned(), "x".to_owned()]),
                "rr" => all.extend(["-m", "x", "-e", "r/y"].map(String::from)),
                _ => {}
            }
            let ours = Run::starling(tool, &all).run();
            assert_eq!(
                (ours.stdout.as_str(), outcome(&ours)),
                ("", (message, Some(1))),
                "{tool} {args:?}"
            );
        }
    }
    assert!(
        !broker.log()[log_before..].contains("New connection"),
        "nothing connected: {}",
        broker.log()
    );
}
