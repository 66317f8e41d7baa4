//! Issue 15's interoperability matrix: Starling takes the certificates, keys
//! and TLS settings of a Mosquitto deployment made by Mosquitto's own guide.
//!
//! The certificates are made once per run with the exact commands of `man 7
//! mosquitto-tls` (only `-subj`, `-passout` and `-passin` added so that they
//! ask nothing), on the system's OpenSSL 3.0: the server's and clients'
//! certificates are X.509 version 1 with no subjectAltName (checked), the
//! server's name is only in its CN (`localhost`), and `genrsa -des3` keys
//! are encrypted. Each case below runs in every pairing of {Starling broker,
//! Mosquitto broker} x {starling pub/sub, mosquitto_pub/sub}, and with Paho
//! Python (tests/paho/tls_guide.py) where Paho can do it:
//!
//! 1. server-authenticated TLS by host name delivers a message;
//! 2. mutual TLS, the certificate's CN as user name under an ACL: the
//!    allowed topic is delivered, the others are not;
//! 3. a server certificate from a CA the client does not trust is refused;
//! 4. no client certificate where one is required is refused;
//! 5. connecting by IP to a certificate naming only `localhost` fails, and
//!    works with `--insecure`;
//! 6. encrypted keys (PKCS#8 as `genrsa -des3` writes them on OpenSSL 3, and
//!    legacy PEM as it wrote them before): the broker's (pass phrase typed at
//!    OpenSSL's prompt on a terminal, or for Starling read from
//!    `STARLING_TLS_PASSPHRASE_FILE`; a wrong one stops start-up), and a
//!    client's `--key` (same two ways);
//! 7. PSK (`psk_hint`, `psk_file`, `--psk`): the right key delivers, a wrong
//!    one is refused (Paho has no PSK);
//! 8. `ciphers`, `ciphers_tls1.3` and `tls_version` (a minimum) restrict what
//!    `openssl s_client` can negotiate;
//! 9. a client certificate revoked in `crlfile` is refused, others accepted;
//! 10. after SIGHUP with a new certificate and key in the same files, a new
//!     connection sees the new certificate and an open one keeps working;
//! 11. `capath` and `--capath`, hashed directories (`openssl rehash`), in
//!     place of `cafile` and `--cafile` (Paho takes a CA file only).
//!
//! The macro `matrix!` makes one test per pairing, named
//! `CASE::BROKER_broker_TOOLS_tools` (or `CASE::BROKER_broker_paho`), so
//! `cargo test --test tls_guide mosquitto_broker_mosquitto_tools` runs the
//! reference pairing alone: it checks the tests' expectations against
//! Mosquitto 2.0.11 itself. The expected outcomes of failures are
//! Mosquitto's words and statuses (the constants below).
//!
//! Beside this file, tls_guide/: pki.rs makes the certificates, broker.rs
//! starts brokers (on a pseudo-terminal with answer.py when a pass phrase is
//! typed), clients.rs runs the tools, Paho and `openssl s_client`.
//!
//! A missing tool (openssl, mosquitto, python3 with paho-mqtt) fails the test
//! naming scripts/test; nothing is skipped. No fixed ports: every listener
//! has a free port of 127.0.0.1; brokers and tools are killed by process id.

#![cfg(unix)]

mod common;

#[path = "tls_guide/broker.rs"]
mod broker;
#[path = "tls_guide/clients.rs"]
mod clients;
#[path = "tls_guide/pki.rs"]
mod pki;

// The modules in tls_guide/ take these imports and constants with `use
// super::*`.
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::tools::{Done, Kind, Run, Running, STARLING};
use common::{free_port, fresh_dir, tool, Scratch, WAIT};

use broker::{on_terminal_run, python, Launch, TlsBroker};
use clients::*;
use pki::{guide, readable_by_all};

/// A tool's stderr and exit status.
type Outcome = (&'static str, Option<i32>);

/// A handshake that fails, as libmosquitto reports it: inside
/// `mosquitto_connect()`, or in the network loop after it, depending on
/// timing. A key that does not load (wrong pass phrase) is always the first.
const CONNECT_TLS_ERROR: Outcome = ("Unable to connect (A TLS error occurred.).\n", Some(1));
const LOOP_TLS_ERROR: Outcome = ("Error: A TLS error occurred.\n", Some(8));
const HANDSHAKE_FAILED: &[Outcome] = &[CONNECT_TLS_ERROR, LOOP_TLS_ERROR];
/// A client certificate the broker refuses (missing, revoked): the broker's
/// alert read in the network loop, or while reading CONNACK (about a third
/// of the time), never a bare "Connection reset by peer".
const CERTIFICATE_REFUSED: &[Outcome] = &[
    ("Error: The connection was lost.\n", Some(7)),
    ("Error: Protocol error\n", Some(1)),
];

/// OpenSSL's pass phrase prompt, which Mosquitto's broker and tools show.
const PROMPT: &str = "Enter PEM pass phrase:";
/// Starling's non-interactive way: the environment variable naming a file
/// whose first line is the pass phrase.
const PASSPHRASE_FILE: &str = "STARLING_TLS_PASSPHRASE_FILE";
/// The guide's pass phrases (`-passout pass:...`).
const CA_PASS: &str = "guide-ca";
const SERVER_PASS: &str = "guide-server";
const ALICE_PASS: &str = "guide-alice";
/// The PSK of identity `alice` in the broker's `psk_file`, and another.
const PSK: &str = "00112233445566778899aabbccddeeff";
const WRONG_PSK: &str = "00112233445566778899aabbccddeefe";

const POLL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Pairings.

/// The clients of a pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tools {
    /// `starling pub` and `starling sub`.
    Starling,
    /// `mosquitto_pub` and `mosquitto_sub`.
    Mosquitto,
    /// tests/paho/tls_guide.py.
    Paho,
}

#[derive(Clone, Copy)]
struct Pairing {
    broker: Kind,
    tools: Tools,
}

impl fmt::Display for Pairing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let broker = match self.broker {
            Kind::Starling => "starling broker",
            Kind::Mosquitto => "mosquitto broker",
        };
        let tools = match self.tools {
            Tools::Starling => "starling pub/sub",
            Tools::Mosquitto => "mosquitto_pub/sub",
            Tools::Paho => "Paho",
        };
        write!(f, "[{broker} x {tools}]")
    }
}

/// One test per pairing of a case: `matrix!(case)` for the two brokers and
/// two tool sets, `matrix!(case, paho)` adds Paho against each broker (the
/// Mosquitto one checks the script).
macro_rules! matrix {
    (@one $case:ident $name:ident $broker:ident $tools:ident) => {
        #[test]
        fn $name() {
            super::$case(super::Pairing {
                broker: Kind::$broker,
                tools: super::Tools::$tools,
            });
        }
    };
    ($case:ident) => {
        mod $case {
            use super::Kind;
            matrix!(@one $case starling_broker_starling_tools Starling Starling);
            matrix!(@one $case starling_broker_mosquitto_tools Starling Mosquitto);
            matrix!(@one $case mosquitto_broker_starling_tools Mosquitto Starling);
            matrix!(@one $case mosquitto_broker_mosquitto_tools Mosquitto Mosquitto);
        }
    };
    ($case:ident, paho) => {
        mod $case {
            use super::Kind;
            matrix!(@one $case starling_broker_starling_tools Starling Starling);
            matrix!(@one $case starling_broker_mosquitto_tools Starling Mosquitto);
            matrix!(@one $case mosquitto_broker_starling_tools Mosquitto Starling);
            matrix!(@one $case mosquitto_broker_mosquitto_tools Mosquitto Mosquitto);
            matrix!(@one $case starling_broker_paho Starling Paho);
            matrix!(@one $case mosquitto_broker_paho Mosquitto Paho);
        }
    };
}

// ---------------------------------------------------------------------------
// The cases.

/// A broker with one listener of the guide's plain-key server certificate
/// and `extra`, anonymous clients allowed.
fn plain_broker(pairing: Pairing, extra: &str) -> TlsBroker {
    Launch::new(pairing.broker, "allow_anonymous true")
        .listener(&guide().listener("server", extra))
        .start(pairing)
}

/// Case 1: `-h localhost --cafile ca.crt`: the CN names the host.
fn server_authenticated_by_host_name(pairing: Pairing) {
    let broker = plain_broker(pairing, "");
    let args = tls("localhost", broker.port(), "ca.crt");
    if pairing.tools == Tools::Paho {
        return paho_delivered(pairing, &args, "guide/host");
    }
    delivered(pairing, &args, &args, "guide/host");
}
matrix!(server_authenticated_by_host_name, paho);

/// Case 2: `require_certificate`, `use_identity_as_username`, and an ACL giving
/// alice `alice/#` only (bob everything): alice's publish to `other/x` and
/// bob's to `other/y` do not reach alice; hers to `alice/x` reaches both.
/// Each publish is acknowledged before the next, so a message that should
/// not arrive would arrive first.
fn mutual_tls_identity_as_username_under_acl(pairing: Pairing) {
    let g = guide();
    let broker = Launch::new(
        pairing.broker,
        &format!("allow_anonymous false\nacl_file {}", g.arg("acl")),
    )
    .listener(&g.listener(
        "server",
        "require_certificate true\nuse_identity_as_username true\n",
    ))
    .start(pairing);
    let base = tls("localhost", broker.port(), "ca.crt");
    let (alice, bob) = (cert(&base, "alice"), cert(&base, "bob"));
    if pairing.tools == Tools::Paho {
        return paho(
            pairing,
            &alice,
            &[
                "-s",
                "alice/#",
                "-s",
                "other/#",
                "-m",
                "other/x=denied",
                "-m",
                "alice/x=allowed",
                "--expect",
                "alice/x=allowed",
            ],
        );
    }
    let alice_sub = subscribed(pairing, &alice, &["alice/#", "other/#"], 1);
    let bob_sub = subscribed(pairing, &bob, &["#"], 2);
    published(pairing, &alice, "other/x", "denied to alice");
    published(pairing, &bob, "other/y", "from bob");
    published(pairing, &alice, "alice/x", "allowed");
    received(pairing, alice_sub, &["alice/x allowed"]);
    received(pairing, bob_sub, &["other/y from bob", "alice/x allowed"]);
}
matrix!(mutual_tls_identity_as_username_under_acl, paho);

/// Case 3: The client trusts another CA only.
fn unknown_ca_refused(pairing: Pairing) {
    let broker = plain_broker(pairing, "");
    let args = tls("localhost", broker.port(), "other-ca.crt");
    if pairing.tools == Tools::Paho {
        return paho(pairing, &args, &["--expect-refusal"]);
    }
    both_refused(pairing, &args, HANDSHAKE_FAILED, "trusting another CA");
}
matrix!(unknown_ca_refused, paho);

/// Case 4: `require_certificate true` and no `--cert`; alice's is accepted.
fn missing_client_certificate_refused(pairing: Pairing) {
    let broker = plain_broker(pairing, "require_certificate true\n");
    let args = tls("localhost", broker.port(), "ca.crt");
    let alice = cert(&args, "alice");
    if pairing.tools == Tools::Paho {
        paho(pairing, &args, &["--expect-refusal"]);
        return paho_delivered(pairing, &alice, "guide/cert");
    }
    both_refused(pairing, &args, CERTIFICATE_REFUSED, "without a certificate");
    delivered(pairing, &alice, &alice, "guide/cert");
}
matrix!(missing_client_certificate_refused, paho);

/// Case 5: `-h 127.0.0.1` against a certificate naming `localhost` in its CN
/// only: refused, and delivered with `--insecure`.
fn ip_address_needs_insecure(pairing: Pairing) {
    let broker = plain_broker(pairing, "");
    let args = tls("127.0.0.1", broker.port(), "ca.crt");
    let insecure = with(&args, &["--insecure"]);
    if pairing.tools == Tools::Paho {
        paho(pairing, &args, &["--expect-refusal"]);
        return paho_delivered(pairing, &insecure, "guide/ip");
    }
    both_refused(pairing, &args, HANDSHAKE_FAILED, "by IP address");
    delivered(pairing, &insecure, &insecure, "guide/ip");
}
matrix!(ip_address_needs_insecure, paho);

/// Case 6: The broker's `keyfile` from `genrsa -des3` (PKCS#8, and legacy
/// PEM). Mosquitto asks with OpenSSL's prompt on its terminal; Starling asks
/// the same way, or reads the first line of the file named by
/// `STARLING_TLS_PASSPHRASE_FILE` and then asks nothing. A wrong pass phrase
/// stops start-up naming the file.
fn encrypted_server_key(pairing: Pairing) {
    let g = guide();
    let launch = |name: &str, pass_file: Option<&str>| {
        let launch =
            Launch::new(pairing.broker, "allow_anonymous true").listener(&g.listener(name, ""));
        match pass_file {
            Some(file) => launch.env(PASSPHRASE_FILE, g.path(file)),
            None => launch,
        }
    };
    // On a terminal, answering the prompt.
    for name in ["server-enc", "server-legacy"] {
        let broker = launch(name, None).on_terminal(SERVER_PASS).start(pairing);
        assert!(
            broker.output().contains(PROMPT),
            "{pairing}: the broker should ask for the pass phrase of {name}.key: {}",
            broker.output()
        );
        let args = tls("localhost", broker.port(), "ca.crt");
        delivered(pairing, &args, &args, &format!("{name}/terminal"));
    }
    // A wrong answer.
    let key = g.arg("server-enc.key");
    let done = launch("server-enc", None)
        .on_terminal("wrong")
        .fails(pairing);
    let wrong_words = match pairing.broker {
        Kind::Mosquitto => {
            format!("Error: Unable to load server key file \"{key}\". Check keyfile.")
        }
        Kind::Starling => "wrong pass phrase".to_owned(),
    };
    let status_ok = match pairing.broker {
        Kind::Mosquitto => done.code == Some(1),
        Kind::Starling => done.code.is_some_and(|code| code != 0),
    };
    assert!(
        status_ok && done.stdout.contains(&wrong_words) && done.stdout.contains(&key),
        "{pairing}: a wrong pass phrase typed should stop start-up with {wrong_words:?} and \
         {key}: {done:?}"
    );
    if pairing.broker == Kind::Mosquitto {
        return;
    }
    // Starling: from the file, asking nothing (on a terminal that answers
    // nothing, where a prompt would show and wait).
    for name in ["server-enc", "server-legacy"] {
        let broker = launch(name, Some("server-pass"))
            .on_terminal("")
            .start(pairing);
        let args = tls("localhost", broker.port(), "ca.crt");
        delivered(pairing, &args, &args, &format!("{name}/file"));
        assert!(
            !broker.output().contains(PROMPT),
            "{pairing}: with STARLING_TLS_PASSPHRASE_FILE the broker should not prompt: {}",
            broker.output()
        );
    }
    let done = launch("server-enc", Some("wrong-pass")).fails(pairing);
    let all = format!("{}{}", done.stdout, done.stderr);
    assert!(
        done.code.is_some_and(|code| code != 0)
            && all.contains("wrong pass phrase")
            && all.contains(&key),
        "{pairing}: a wrong pass phrase in STARLING_TLS_PASSPHRASE_FILE should stop start-up \
         naming {key}: {done:?}"
    );
}
matrix!(encrypted_server_key);

/// Case 6: A client's `--key` from `genrsa -des3` (PKCS#8, and legacy
/// PEM): mosquitto_pub asks with
/// OpenSSL's prompt on its terminal, and a wrong answer ends in "Unable to
/// connect (A TLS error occurred.)." and status 1; starling pub asks the
/// same way, or reads `STARLING_TLS_PASSPHRASE_FILE`.
fn encrypted_client_key(pairing: Pairing) {
    let g = guide();
    let broker = plain_broker(pairing, "require_certificate true\n");
    let base = tls("localhost", broker.port(), "ca.crt");
    let enc = cert(&base, "alice-enc");
    let legacy = cert(&base, "alice-legacy");
    if pairing.tools == Tools::Paho {
        for (args, topic) in [(&enc, "guide/enc"), (&legacy, "guide/legacy")] {
            paho_delivered(pairing, &with(args, &["--keypass", ALICE_PASS]), topic);
        }
        return paho(
            pairing,
            &with(&enc, &["--keypass", "wrong"]),
            &["--expect-refusal"],
        );
    }
    let ours = pairing.tools == Tools::Starling;
    let sub = subscribed(
        pairing,
        &cert(&base, "alice"),
        &["enc/#"],
        2 + usize::from(ours),
    );
    // pub on a terminal that answers the prompt with `answer` (never if
    // empty), with `STARLING_TLS_PASSPHRASE_FILE` naming `pass_file` if given:
    // what the terminal showed after the helper's PID line, and the status.
    let on_terminal = |key: &[String], answer: &str, pass_file: Option<&str>, topic: &str| {
        let (label, program): (&str, OsString) = if ours {
            ("starling pub", STARLING.into())
        } else {
            ("mosquitto_pub", tool("mosquitto_pub").into())
        };
        let mut args = if ours {
            vec!["pub".to_owned()]
        } else {
            Vec::new()
        };
        args.extend(with(key, &["-t", topic, "-m", "typed", "-q", "1"]));
        let mut run = on_terminal_run(label, answer, program, args);
        if let Some(file) = pass_file {
            run = run.env(PASSPHRASE_FILE, g.path(file));
        }
        let done = Ended::from(run.run());
        let shown = done.stdout.split_once('\n').map_or("", |(_, rest)| rest);
        (shown.to_owned(), done.code)
    };
    let asked = format!("{PROMPT}\n");
    for (key, topic) in [(&enc, "enc/terminal"), (&legacy, "enc/legacy")] {
        assert_eq!(
            on_terminal(key, ALICE_PASS, None, topic),
            (asked.clone(), Some(0)),
            "{pairing}: pub {key:?} on a terminal should ask {PROMPT:?} and publish"
        );
    }
    assert_eq!(
        on_terminal(&enc, "wrong", None, "enc/wrong"),
        (format!("{asked}{}", CONNECT_TLS_ERROR.0), Some(1)),
        "{pairing}: a wrong pass phrase typed"
    );
    if ours {
        // From the file, asking nothing (a prompt would show, and wait).
        assert_eq!(
            on_terminal(&enc, "", Some("alice-pass"), "enc/file"),
            (String::new(), Some(0)),
            "{pairing}: pub with {PASSPHRASE_FILE}"
        );
        let args = with(&enc, &["-t", "enc/file", "-m", "typed", "-q", "1"]);
        let done: Ended = Run::starling("pub", &args)
            .env(PASSPHRASE_FILE, g.path("wrong-pass"))
            .run()
            .into();
        assert_eq!(
            (done.stdout.as_str(), outcome(&done)),
            ("", CONNECT_TLS_ERROR),
            "{pairing}: pub with a wrong pass phrase in {PASSPHRASE_FILE}: {done:?}"
        );
        received(
            pairing,
            sub,
            &["enc/terminal typed", "enc/legacy typed", "enc/file typed"],
        );
    } else {
        received(pairing, sub, &["enc/terminal typed", "enc/legacy typed"]);
    }
}
matrix!(encrypted_client_key, paho);

/// Case 7: A listener with no certificate: `psk_hint`, `psk_file`, and the
/// identity as user name (the ACL lets alice use `alice/#`).
fn psk_right_key_delivers_wrong_key_refused(pairing: Pairing) {
    let g = guide();
    let broker = Launch::new(
        pairing.broker,
        &format!("allow_anonymous false\nacl_file {}", g.arg("acl")),
    )
    .listener(&format!(
        "psk_hint hint\npsk_file {}\nuse_identity_as_username true\n",
        g.arg("psk")
    ))
    .start(pairing);
    let port = broker.port().to_string();
    let psk = |key: &str| {
        [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--psk",
            key,
            "--psk-identity",
            "alice",
        ]
        .map(String::from)
        .to_vec()
    };
    delivered(pairing, &psk(PSK), &psk(PSK), "alice/psk");
    both_refused(
        pairing,
        &psk(WRONG_PSK),
        HANDSHAKE_FAILED,
        "with a wrong PSK",
    );
}
matrix!(psk_right_key_delivers_wrong_key_refused);

/// Case 8: `ciphers` (TLS 1.2 and below), `ciphers_tls1.3` and `tls_version` (a
/// minimum) on three listeners, probed with `openssl s_client`; then the
/// pairing's tools publish through one and receive through another.
fn ciphers_and_tls_version(pairing: Pairing) {
    let g = guide();
    let broker = Launch::new(pairing.broker, "allow_anonymous true")
        .listener(&g.listener(
            "server",
            "ciphers ECDHE-RSA-AES256-GCM-SHA384\ntls_version tlsv1.2\n",
        ))
        .listener(&g.listener("server", "tls_version tlsv1.3\n"))
        .listener(&g.listener("server", "ciphers_tls1.3 TLS_AES_128_GCM_SHA256\n"))
        .start(pairing);
    let [cipher12, only13, cipher13] = [broker.ports[0], broker.ports[1], broker.ports[2]];
    let p = pairing;
    let aes256 = "ECDHE-RSA-AES256-GCM-SHA384";
    negotiates(
        p,
        cipher12,
        &["-tls1_2", "-cipher", aes256],
        "TLSv1.2",
        Some(aes256),
    );
    cannot_negotiate(
        p,
        cipher12,
        &["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"],
    );
    negotiates(p, cipher12, &["-tls1_3"], "TLSv1.3", None);
    cannot_negotiate(p, cipher12, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    cannot_negotiate(p, only13, &["-tls1_2"]);
    negotiates(p, only13, &["-tls1_3"], "TLSv1.3", None);
    cannot_negotiate(
        p,
        cipher13,
        &["-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384"],
    );
    let aes128 = "TLS_AES_128_GCM_SHA256";
    negotiates(
        p,
        cipher13,
        &["-tls1_3", "-ciphersuites", aes128],
        "TLSv1.3",
        Some(aes128),
    );
    let publisher = with(
        &tls("localhost", cipher12, "ca.crt"),
        &["--tls-version", "tlsv1.2", "--ciphers", aes256],
    );
    let subscriber = with(
        &tls("localhost", only13, "ca.crt"),
        &["--tls-version", "tlsv1.3"],
    );
    delivered(pairing, &subscriber, &publisher, "guide/ciphers");
}
matrix!(ciphers_and_tls_version);

/// Case 9: `crlfile` revoking mallory: refused; alice and bob accepted.
fn revoked_certificate_refused(pairing: Pairing) {
    let g = guide();
    let broker = plain_broker(
        pairing,
        &format!("require_certificate true\ncrlfile {}\n", g.arg("crl.pem")),
    );
    let base = tls("localhost", broker.port(), "ca.crt");
    let mallory = cert(&base, "mallory");
    if pairing.tools == Tools::Paho {
        paho(pairing, &mallory, &["--expect-refusal"]);
        return paho_delivered(pairing, &cert(&base, "alice"), "guide/crl");
    }
    both_refused(pairing, &mallory, CERTIFICATE_REFUSED, "revoked");
    delivered(
        pairing,
        &cert(&base, "alice"),
        &cert(&base, "bob"),
        "guide/crl",
    );
}
matrix!(revoked_certificate_refused, paho);

/// Case 10: The broker's `certfile` and `keyfile` overwritten with `new-server`'s
/// (another CA), then `kill -HUP`: a new connection gets the new
/// certificate (s_client's peer, and a client trusting only the new CA
/// publishes), and a subscriber connected before receives it.
fn sighup_reloads_the_certificate(pairing: Pairing) {
    let g = guide();
    let files = Scratch::new("tls-guide-sighup");
    let (crt, key) = (files.path("server.crt"), files.path("server.key"));
    let install = |name: &str| {
        fs::copy(g.path(&format!("{name}.crt")), &crt).unwrap();
        fs::copy(g.path(&format!("{name}.key")), &key).unwrap();
        readable_by_all(&files.path(""));
    };
    install("server");
    let broker = Launch::new(pairing.broker, "allow_anonymous true")
        .listener(&format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n",
            g.arg("ca.crt"),
            crt.display(),
            key.display()
        ))
        .start(pairing);
    let old_ca = tls("localhost", broker.port(), "ca.crt");
    let new_ca = tls("localhost", broker.port(), "new-ca.crt");
    let renewed = "Peer certificate: O = Renewed, CN = localhost\n";
    let peer = s_client(broker.port(), "ca.crt", &[]);
    assert!(
        peer.stderr.contains("Peer certificate: CN = localhost\n"),
        "{pairing}: before SIGHUP: {peer:?}"
    );
    let sub =
        (pairing.tools != Tools::Paho).then(|| subscribed(pairing, &old_ca, &["reload/#"], 1));
    match pairing.tools {
        Tools::Paho => paho(pairing, &new_ca, &["--expect-refusal"]),
        _ => {
            let done = publish(pairing, &new_ca, "reload/before", "x");
            assert_one_of(pairing, "before SIGHUP", &done, HANDSHAKE_FAILED);
        }
    }
    install("new-server");
    broker.hang_up();
    let deadline = Instant::now() + WAIT;
    loop {
        let peer = s_client(broker.port(), "new-ca.crt", &[]);
        if peer.stderr.contains(renewed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pairing}: after SIGHUP new connections should get new-server's certificate: \
             {peer:?}\nbroker:\n{}",
            broker.output()
        );
        thread::sleep(Duration::from_millis(50));
    }
    match sub {
        None => paho_delivered(pairing, &new_ca, "reload/paho"),
        Some(sub) => {
            published(pairing, &new_ca, "reload/after", "new certificate");
            received(pairing, sub, &["reload/after new certificate"]);
        }
    }
    drop(broker);
    drop(files);
}
matrix!(sighup_reloads_the_certificate, paho);

/// Case 11: `capath` on the broker (verifying client certificates) and
/// `--capath` in the tools, directories made by `openssl rehash`; a
/// directory of another CA is refused.
fn capath_hashed_directories(pairing: Pairing) {
    let g = guide();
    let broker = Launch::new(pairing.broker, "allow_anonymous true")
        .listener(&format!(
            "capath {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            g.arg("capath"),
            g.arg("server.crt"),
            g.arg("server.key")
        ))
        .start(pairing);
    let port = broker.port().to_string();
    let capath = |dir: &str| {
        ["-h", "localhost", "-p", &port, "--capath", &g.arg(dir)]
            .map(String::from)
            .to_vec()
    };
    let alice = cert(&capath("capath"), "alice");
    delivered(pairing, &alice, &alice, "guide/capath");
    both_refused(
        pairing,
        &cert(&capath("other-capath"), "alice"),
        HANDSHAKE_FAILED,
        "with another CA's directory",
    );
}
matrix!(capath_hashed_directories);
