//! `starling broker -c mosquitto.conf` with TLS, WebSockets, PROXY protocol
//! and limit directives, against real peers: mosquitto_pub / mosquitto_sub
//! (`--cafile`, `--cert`, `--key`), Paho for Python over TLS and over
//! WebSockets (ws and wss), handwritten PROXY headers, and SIGHUP reloading
//! the certificate while a TLS client stays connected.
//!
//! Certificates are made by `openssl` for each test (tests/pki of the broker
//! crate). A missing tool fails the test, naming scripts/test.

#![cfg(unix)]

mod common;
#[path = "../../starling-broker/tests/common/pki.rs"]
mod pki;

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, fresh_dir, tool, Finished, Peer, Scratch, HOST};
use pki::{Issued, Pki};

const WAIT: Duration = Duration::from_secs(10);

/// `starling broker -c FILE -v` with its log in a file; killed on drop.
struct Starling {
    child: Child,
    log: PathBuf,
    ports: Vec<u16>,
    _scratch: Scratch,
}

impl Starling {
    /// Writes the configuration `conf(ports)` for `n` free ports and starts the
    /// broker, returning once every port accepts connections. A port taken in
    /// the meantime makes the broker exit: it is retried with others.
    fn start(label: &str, n: usize, conf: impl Fn(&[u16]) -> String) -> Starling {
        let scratch = Scratch::new(label);
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let file = scratch.path(&format!("mosquitto-{attempt}.conf"));
            fs::write(&file, conf(&ports)).expect("write the configuration");
            let log = scratch.path(&format!("broker-{attempt}.log"));
            let out = fs::File::create(&log).expect("create the log");
            let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
                .arg("broker")
                .arg("-c")
                .arg(&file)
                .arg("-v")
                .env(
                    "STARLING_DATA_DIR",
                    fresh_dir(&scratch, &format!("data-{attempt}")),
                )
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("clone the log"))
                .stderr(out)
                .spawn()
                .expect("start starling");
            let deadline = Instant::now() + WAIT;
            let listening = loop {
                if child.try_wait().expect("try_wait").is_some() {
                    break false;
                }
                let up = ports.iter().all(|&port| {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                });
                if up {
                    break true;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("starling did not listen on {ports:?}:\n{}", read(&log));
                }
                thread::sleep(Duration::from_millis(5));
            };
            if listening {
                return Starling {
                    child,
                    log,
                    ports,
                    _scratch: scratch,
                };
            }
            let _ = child.wait();
            failures.push(read(&log));
        }
        panic!("starling did not start:\n{}", failures.join("\n---\n"));
    }

    fn port(&self, n: usize) -> u16 {
        self.ports[n]
    }

    fn log(&self) -> String {
        read(&self.log)
    }

    /// Waits until the log has a line containing `what`.
    fn wait_for_log(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "the broker never logged {what:?}; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends SIGHUP (reload).
    fn hangup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Starling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- starling log ---\n{}", self.log());
        }
    }
}

fn read(path: &Path) -> String {
    fs::read(path).map_or_else(
        |e| format!("(cannot read {}: {e})", path.display()),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn tls_args<'a>(ca: &'a Path, client: Option<&'a Issued>) -> Vec<String> {
    let mut args = vec!["--cafile".to_string(), ca.display().to_string()];
    if let Some(issued) = client {
        args.extend([
            "--cert".to_string(),
            issued.cert.display().to_string(),
            "--key".to_string(),
            issued.key.display().to_string(),
        ]);
    }
    args
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT ARGS...`, run to its end.
fn mosquitto_pub(port: u16, args: &[String]) -> Finished {
    let mut all = vec![
        "-h".to_string(),
        HOST.to_string(),
        "-p".to_string(),
        port.to_string(),
    ];
    all.extend_from_slice(args);
    Peer::spawn(&tool("mosquitto_pub"), &all).wait()
}

/// `mosquitto_sub -d ...` subscribed: waits for its SUBACK.
fn mosquitto_sub(port: u16, args: &[String]) -> Peer {
    let mut all = vec![
        "-h".to_string(),
        HOST.to_string(),
        "-p".to_string(),
        port.to_string(),
        "-d".to_string(),
    ];
    all.extend_from_slice(args);
    let peer = Peer::spawn_line_buffered(&tool("mosquitto_sub"), &all);
    peer.wait_for_stdout("its SUBACK", |line| line.contains("received SUBACK"));
    peer
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn tls_listener(pki: &Pki, port: u16) -> String {
    let server = pki.server();
    format!(
        "listener {port} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
        server.cert.display(),
        server.key.display()
    )
}

#[test]
fn mosquitto_clients_over_tls_with_client_certificates() {
    let pki = Pki::new("bin-tls");
    let broker = Starling::start("tls", 1, |ports| {
        format!(
            "allow_anonymous false\n{}cafile {}\ncrlfile {}\nrequire_certificate true\n\
             use_identity_as_username true\n",
            tls_listener(&pki, ports[0]),
            pki.ca().display(),
            pki.crl().display()
        )
    });
    let port = broker.port(0);
    let alice = pki.alice();
    let mut sub_args = tls_args(&pki.ca(), Some(&alice));
    sub_args.extend(strings(&["-t", "tls/#", "-v", "-C", "1", "-q", "1"]));
    let sub = mosquitto_sub(port, &sub_args);
    let mut pub_args = tls_args(&pki.ca(), Some(&alice));
    pub_args.extend(strings(&["-t", "tls/hello", "-m", "over TLS", "-q", "1"]));
    mosquitto_pub(port, &pub_args).success();
    sub.wait_for_stdout("the message", |line| line == "tls/hello over TLS");
    sub.wait().success();
    // use_identity_as_username: the CN is the user name, no password asked.
    broker.wait_for_log("u'alice'");

    // Refused in the handshake: no certificate, another CA's, expired, revoked.
    for (what, client) in [
        ("no certificate", None),
        ("untrusted", Some(pki.untrusted())),
        ("expired", Some(pki.expired())),
        ("revoked", Some(pki.mallory())),
    ] {
        let mut args = tls_args(&pki.ca(), client.as_ref());
        args.extend(strings(&["-t", "tls/refused", "-m", "x"]));
        let finished = mosquitto_pub(port, &args);
        assert!(!finished.status.success(), "{what} was let in:\n{finished}");
    }
    assert!(
        broker.log().contains("TLS handshake failed"),
        "{}",
        broker.log()
    );
}

/// The Python interpreter, checked to import paho-mqtt 2.x.
fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let python = tool("python3");
            let check = "import sys\nfrom importlib.metadata import version\n\
                         import paho.mqtt.client\nprint(version('paho-mqtt'))\nprint(sys.executable)";
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

/// Runs tests/paho/transports.py and checks its PASS line.
fn paho(port: u16, version: &str, transport: &str, extra: &[String]) {
    let script = format!("{}/tests/paho/transports.py", env!("CARGO_MANIFEST_DIR"));
    let mut args = strings(&[
        "-u",
        "-B",
        &script,
        HOST,
        &port.to_string(),
        version,
        transport,
    ]);
    args.extend_from_slice(extra);
    let finished = Peer::spawn(&python(), &args).wait();
    let last = finished.stdout.last().cloned().unwrap_or_default();
    assert!(
        finished.status.success() && last.starts_with("PASS"),
        "paho {transport} {version} {extra:?}:\n{finished}"
    );
}

#[test]
fn paho_over_tls_websockets_and_secure_websockets() {
    let pki = Pki::new("bin-paho");
    let server = pki.server();
    let broker = Starling::start("paho", 4, |p| {
        format!(
            "allow_anonymous true\n{}cafile {ca}\nrequire_certificate true\n\
             listener {} 127.0.0.1\nprotocol websockets\n\
             listener {} 127.0.0.1\nprotocol websockets\ncertfile {}\nkeyfile {}\n\
             listener {} 127.0.0.1\nprotocol websockets\nwebsockets_path /mqtt\n\
             websockets_origin https://app.example\n",
            tls_listener(&pki, p[0]),
            p[1],
            p[2],
            server.cert.display(),
            server.key.display(),
            p[3],
            ca = pki.ca().display(),
        )
    });
    let ca = pki.ca().display().to_string();
    let alice = pki.alice();
    let with_cert = vec![
        "--ca".to_string(),
        ca.clone(),
        "--cert".to_string(),
        alice.cert.display().to_string(),
        "--key".to_string(),
        alice.key.display().to_string(),
    ];
    for version in ["v311", "v5"] {
        paho(broker.port(0), version, "tcp", &with_cert);
        paho(broker.port(1), version, "websockets", &[]);
        paho(
            broker.port(2),
            version,
            "websockets",
            &["--ca".to_string(), ca.clone()],
        );
    }
    // Without a certificate, the TLS listener refuses Paho in the handshake.
    let refused = ["--ca".to_string(), ca, "--expect-refusal".to_string()];
    paho(broker.port(0), "v311", "tcp", &refused);
    // Paho sends no Origin header: a listener with an allow-list refuses it.
    paho(
        broker.port(3),
        "v311",
        "websockets",
        &strings(&["--expect-refusal"]),
    );
}

#[test]
fn sighup_reloads_the_certificate_while_a_tls_client_stays_connected() {
    let pki = Pki::new("bin-reload");
    let live = Issued {
        cert: pki.path("live.pem"),
        key: pki.path("live.key"),
    };
    fs::copy(pki.server().cert, &live.cert).unwrap();
    fs::copy(pki.server().key, &live.key).unwrap();
    // The keys openssl writes are root's alone (0600), as an administrator's
    // would be: a broker that re-reads them on SIGHUP must stay root (`user
    // root`). Dropping to `mosquitto`, the default, its reload would fail
    // (`user_cannot_reload_files_only_root_reads` in cli_broker).
    let broker = Starling::start("reload", 1, |ports| {
        format!(
            "user root\nallow_anonymous true\nlistener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            ports[0],
            live.cert.display(),
            live.key.display()
        )
    });
    let port = broker.port(0);
    let mut sub_args = tls_args(&pki.ca(), None);
    sub_args.extend(strings(&["-t", "reload/#", "-v", "-i", "stays"]));
    let sub = mosquitto_sub(port, &sub_args);

    let mut new_ca = tls_args(&pki.new_ca(), None);
    new_ca.extend(strings(&["-t", "reload/x", "-m", "after"]));
    assert!(
        !mosquitto_pub(port, &new_ca).status.success(),
        "the new CA is not in use yet"
    );

    fs::copy(pki.new_server().cert, &live.cert).unwrap();
    fs::copy(pki.new_server().key, &live.key).unwrap();
    broker.hangup();
    broker.wait_for_log("Reloaded the TLS certificates");

    // New connections get the new certificate...
    mosquitto_pub(port, &new_ca).success();
    // ...the client connected before is still there and gets the message.
    sub.wait_for_stdout("the message", |line| line == "reload/x after");
    let mut old_ca = tls_args(&pki.ca(), None);
    old_ca.extend(strings(&["-t", "reload/x", "-m", "old"]));
    assert!(!mosquitto_pub(port, &old_ca).status.success());
    assert!(
        !broker.log().contains("Client stays closed"),
        "{}",
        broker.log()
    );
    sub.kill();
}

/// Sends `header` then a 3.1.1 CONNECT for `id` and reads the CONNACK.
fn connect_through(port: u16, header: &[u8], id: &str) -> [u8; 4] {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut packet = vec![0x10, 0, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
    packet.extend_from_slice(&(id.len() as u16).to_be_bytes());
    packet.extend_from_slice(id.as_bytes());
    packet[1] = (packet.len() - 2) as u8;
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&packet);
    stream.write_all(&bytes).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).expect("a CONNACK");
    connack
}

#[test]
fn proxy_protocol_puts_the_client_address_in_the_log() {
    let broker = Starling::start("proxy", 2, |p| {
        format!(
            "allow_anonymous true\nlistener {} 127.0.0.1\nenable_proxy_protocol 1\n\
             listener {} 127.0.0.1\nenable_proxy_protocol 2\n",
            p[0], p[1]
        )
    });
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 1883\r\n";
    assert_eq!(
        connect_through(broker.port(0), v1, "via-v1"),
        [0x20, 2, 0, 0]
    );
    broker.wait_for_log("New client connected from 203.0.113.7:40000 as via-v1");

    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x24".to_vec();
    v2.extend_from_slice(
        &"2001:db8::5"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(
        &"2001:db8::1"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    v2.extend_from_slice(&[0xC3, 0x50, 0x07, 0x5B]);
    assert_eq!(
        connect_through(broker.port(1), &v2, "via-v2"),
        [0x20, 2, 0, 0]
    );
    broker.wait_for_log("New client connected from [2001:db8::5]:50000 as via-v2");

    // Without the header, mosquitto_pub never gets to MQTT.
    let finished = mosquitto_pub(broker.port(1), &strings(&["-t", "t", "-m", "m"]));
    assert!(!finished.status.success(), "{finished}");
}

#[test]
fn connect_timeout_and_per_listener_max_connections() {
    let broker = Starling::start("limits", 2, |p| {
        format!(
            "allow_anonymous true\nconnect_timeout 1\nlistener {} 127.0.0.1\nmax_connections 1\n\
             listener {} 127.0.0.1\n",
            p[0], p[1]
        )
    });
    // A connection that sends nothing is closed after connect_timeout.
    let mut silent = TcpStream::connect((Ipv4Addr::LOCALHOST, broker.port(1))).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(silent.read(&mut buf).expect("closed, not timed out"), 0);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    broker.wait_for_log("sent no CONNECT within 1s");

    // The first listener takes one client; the second has no limit.
    let sub = mosquitto_sub(broker.port(0), &strings(&["-t", "x"]));
    let finished = mosquitto_pub(broker.port(0), &strings(&["-t", "x", "-m", "m"]));
    assert!(!finished.status.success(), "{finished}");
    mosquitto_pub(broker.port(1), &strings(&["-t", "x", "-m", "m"])).success();
    broker.wait_for_log("max_connections reached");
    sub.kill();
}

#[test]
fn use_subject_as_username_gives_the_subject_as_mosquitto_writes_it() {
    let pki = Pki::new("bin-subject");
    let broker = Starling::start("subject", 1, |ports| {
        format!(
            "allow_anonymous false\n{}cafile {}\nrequire_certificate true\nuse_subject_as_username true\n",
            tls_listener(&pki, ports[0]),
            pki.ca().display()
        )
    });
    let mut args = tls_args(&pki.ca(), Some(&pki.bob()));
    args.extend(strings(&["-t", "t", "-m", "m", "-i", "bob"]));
    mosquitto_pub(broker.port(0), &args).success();
    // Debian's mosquitto 2.0.11 logs this very user name for this certificate
    // (OpenSSL's RFC 2253 form: the last attribute first).
    broker.wait_for_log(
        "as bob (p2, c1, k60, u'CN=test client,OU=Production,O=Server,L=Nottingham,ST=Nottinghamshire,C=GB')",
    );
}

#[test]
fn an_unusable_certificate_stops_the_start() {
    let scratch = Scratch::new("bad-tls");
    let conf = scratch.path("mosquitto.conf");
    let missing = scratch.path("missing.pem");
    fs::write(
        &conf,
        format!(
            "listener {} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            free_port(),
            missing.display(),
            missing.display()
        ),
    )
    .unwrap();
    let args = [
        "broker".to_string(),
        "-c".to_string(),
        conf.display().to_string(),
    ];
    let data = fresh_dir(&scratch, "data");
    let finished = Peer::spawn_env(
        Path::new(env!("CARGO_BIN_EXE_starling")),
        &args,
        &[("STARLING_DATA_DIR", data.as_os_str())],
    )
    .wait();
    assert!(!finished.status.success(), "{finished}");
    let said = finished.stderr.join("\n");
    assert!(
        said.contains("missing.pem") && said.contains("cannot read"),
        "{finished}"
    );
}
