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
//! A missing tool (openssl, mosquitto, python3 with paho-mqtt) fails the test
//! naming scripts/test; nothing is skipped. No fixed ports: every listener
//! has a free port of 127.0.0.1; brokers and tools are killed by process id.

#![cfg(unix)]

mod common;

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
// The certificates of `man 7 mosquitto-tls`.

/// The guide's files, made once per test process and only read afterwards:
/// `ca`, `other-ca` (trusted by nobody) and `new-ca` (the SIGHUP case) with
/// `.crt` and an encrypted `.key`; from `ca`: `server` (CN localhost, plain
/// key), `server-enc` (CN localhost, `genrsa -des3` key), `server-legacy`
/// (the same, legacy PEM), `alice`, `alice-enc` and `alice-legacy`
/// (encrypted keys), `bob`, `mallory` (revoked in `crl.pem`);
/// from `new-ca`: `new-server` (O=Renewed, CN localhost). Readable by
/// everyone: Debian's mosquitto, started as root, runs as user mosquitto.
struct Guide {
    dir: PathBuf,
}

/// How `genrsa` makes a key.
#[derive(Clone, Copy)]
enum Key {
    /// `genrsa -out X.key 2048`.
    Plain,
    /// `genrsa -des3 -out X.key 2048` with this pass phrase: PKCS#8 (`BEGIN
    /// ENCRYPTED PRIVATE KEY`) on OpenSSL 3.
    Encrypted(&'static str),
    /// The same command as OpenSSL 1.1 ran it (the guide's keys of older
    /// deployments), `-traditional` on OpenSSL 3: legacy PEM with
    /// `Proc-Type: 4,ENCRYPTED`.
    Legacy(&'static str),
}

/// The leaf certificates, all checked to be version 1 without subjectAltName.
const LEAVES: [&str; 9] = [
    "server",
    "server-enc",
    "server-legacy",
    "new-server",
    "alice",
    "alice-enc",
    "alice-legacy",
    "bob",
    "mallory",
];

fn guide() -> &'static Guide {
    static GUIDE: OnceLock<Guide> = OnceLock::new();
    GUIDE.get_or_init(Guide::make)
}

impl Guide {
    fn make() -> Guide {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
        remove_stale(base);
        let dir = base.join(format!("tls-guide-pki-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let guide = Guide { dir };
        guide.ca("ca", "/CN=Guide CA");
        guide.ca("other-ca", "/CN=Other CA");
        guide.ca("new-ca", "/CN=Renewed CA");
        guide.leaf("ca", "server", "/CN=localhost", Key::Plain);
        let encrypted = Key::Encrypted(SERVER_PASS);
        guide.leaf("ca", "server-enc", "/CN=localhost", encrypted);
        let legacy = Key::Legacy(SERVER_PASS);
        guide.leaf("ca", "server-legacy", "/CN=localhost", legacy);
        let renewed = "/O=Renewed/CN=localhost";
        guide.leaf("new-ca", "new-server", renewed, Key::Plain);
        guide.leaf("ca", "alice", "/CN=alice", Key::Plain);
        guide.leaf("ca", "alice-enc", "/CN=alice", Key::Encrypted(ALICE_PASS));
        guide.leaf("ca", "alice-legacy", "/CN=alice", Key::Legacy(ALICE_PASS));
        guide.leaf("ca", "bob", "/CN=bob", Key::Plain);
        guide.leaf("ca", "mallory", "/CN=mallory", Key::Plain);
        guide.revoke_mallory();
        guide.write(
            "acl",
            "user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite #\n",
        );
        guide.write("psk", &format!("alice:{PSK}\n"));
        guide.write("server-pass", &format!("{SERVER_PASS}\n"));
        guide.write("alice-pass", &format!("{ALICE_PASS}\n"));
        guide.write("wrong-pass", "not the pass phrase\n");
        guide.hashed_directory("capath", "ca.crt");
        guide.hashed_directory("other-capath", "other-ca.crt");
        readable_by_all(&guide.dir);
        for leaf in LEAVES {
            let text = guide.openssl(&["x509", "-noout", "-text", "-in", &format!("{leaf}.crt")]);
            assert!(
                text.contains("Version: 1 (0x0)") && !text.contains("Subject Alternative Name"),
                "{leaf}.crt: the guide's commands should make a version 1 certificate without \
                 subjectAltName on this OpenSSL:\n{text}"
            );
        }
        guide
    }

    /// `openssl req -new -x509 -days N -extensions v3_ca -keyout ca.key -out ca.crt`.
    fn ca(&self, name: &str, subject: &str) {
        self.openssl(&[
            "req",
            "-new",
            "-x509",
            "-days",
            "365",
            "-extensions",
            "v3_ca",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            subject,
            "-passout",
            &format!("pass:{CA_PASS}"),
        ]);
    }

    /// `openssl genrsa [-des3] -out X.key 2048`, `openssl req -out X.csr -key
    /// X.key -new`, `openssl x509 -req -in X.csr -CA ca.crt -CAkey ca.key
    /// -CAcreateserial -out X.crt -days N`.
    fn leaf(&self, ca: &str, name: &str, subject: &str, kind: Key) {
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pass = match kind {
            Key::Plain => {
                self.openssl(&["genrsa", "-out", &key, "2048"]);
                None
            }
            Key::Encrypted(pass) | Key::Legacy(pass) => {
                let passout = format!("pass:{pass}");
                let mut genrsa = vec!["genrsa", "-des3", "-out", &key, "-passout", &passout];
                if matches!(kind, Key::Legacy(_)) {
                    genrsa.push("-traditional");
                }
                genrsa.push("2048");
                self.openssl(&genrsa);
                Some(pass)
            }
        };
        let passin = pass.map(|pass| format!("pass:{pass}"));
        let mut req = vec!["req", "-out", &csr, "-key", &key, "-new", "-subj", subject];
        if let Some(passin) = &passin {
            req.extend(["-passin", passin]);
        }
        self.openssl(&req);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "365",
            "-passin",
            &format!("pass:{CA_PASS}"),
        ]);
    }

    /// The guide has no CRL: `openssl ca` keeps the revocation list, with a
    /// configuration for that alone.
    fn revoke_mallory(&self) {
        let dir = self.dir.display();
        self.write(
            "ca.cnf",
            &format!(
                "[ ca ]\ndefault_ca = guide_ca\n[ guide_ca ]\ndatabase = {dir}/index.txt\n\
                 crlnumber = {dir}/crlnumber\ncertificate = {dir}/ca.crt\n\
                 private_key = {dir}/ca.key\ndefault_md = sha256\ndefault_crl_days = 30\n"
            ),
        );
        self.write("index.txt", "");
        self.write("crlnumber", "1000\n");
        let passin = format!("pass:{CA_PASS}");
        self.openssl(&[
            "ca",
            "-config",
            "ca.cnf",
            "-revoke",
            "mallory.crt",
            "-passin",
            &passin,
        ]);
        self.openssl(&[
            "ca", "-config", "ca.cnf", "-gencrl", "-out", "crl.pem", "-passin", &passin,
        ]);
    }

    /// A `capath` directory: a copy of the certificate `crt` and the hash
    /// links of `openssl rehash`.
    fn hashed_directory(&self, name: &str, crt: &str) {
        fs::create_dir_all(self.path(name)).unwrap();
        fs::copy(self.path(crt), self.path(&format!("{name}/{crt}"))).unwrap();
        self.openssl(&["rehash", name]);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The path of `name` as an argument.
    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) {
        fs::write(self.path(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"));
    }

    /// Runs `openssl` in the directory: its stdout; a failure fails the test.
    fn openssl(&self, args: &[&str]) -> String {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `openssl` ({e}): it makes the test certificates; run \
                     scripts/test, which installs it"
                )
            });
        assert!(
            output.status.success(),
            "openssl {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `cafile`, `certfile` and `keyfile` lines for the server certificate
    /// `name`, then `extra`.
    fn listener(&self, name: &str, extra: &str) -> String {
        format!(
            "cafile {}\ncertfile {}\nkeyfile {}\n{extra}",
            self.arg("ca.crt"),
            self.arg(&format!("{name}.crt")),
            self.arg(&format!("{name}.key"))
        )
    }
}

/// Removes the certificate directories of earlier runs whose process is gone.
fn remove_stale(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("tls-guide-pki-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// The directory (and those in it) searchable and its files readable by
/// every user.
fn readable_by_all(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            readable_by_all(&path);
        } else if path.is_file() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

#[test]
fn the_guides_commands_make_version_1_certificates_and_encrypted_keys() {
    let guide = guide();
    let ca = guide.openssl(&["x509", "-noout", "-text", "-in", "ca.crt"]);
    assert!(
        ca.contains("Version: 3 (0x2)") && ca.contains("CA:TRUE"),
        "{ca}"
    );
    for name in ["server-enc", "alice-enc"] {
        let key = fs::read_to_string(guide.path(&format!("{name}.key"))).unwrap();
        assert!(
            key.contains("BEGIN ENCRYPTED PRIVATE KEY"),
            "genrsa -des3: {key}"
        );
    }
    for name in ["server-legacy", "alice-legacy"] {
        let key = fs::read_to_string(guide.path(&format!("{name}.key"))).unwrap();
        assert!(
            key.contains("Proc-Type: 4,ENCRYPTED"),
            "genrsa -des3 -traditional: {key}"
        );
    }
    let key = fs::read_to_string(guide.path("server.key")).unwrap();
    assert!(!key.contains("ENCRYPTED"), "genrsa: {key}");
    let crl = guide.openssl(&["crl", "-noout", "-text", "-in", "crl.pem"]);
    let serial = guide.openssl(&["x509", "-noout", "-serial", "-in", "mallory.crt"]);
    let serial = serial.trim().trim_start_matches("serial=");
    assert!(crl.contains(serial), "mallory {serial} in the CRL:\n{crl}");
}

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
// Brokers.

/// How to start a broker: its configuration (global lines, then one
/// `listener PORT 127.0.0.1` block per listener), environment, and whether
/// it runs on a terminal where its pass phrase prompt is answered.
struct Launch {
    kind: Kind,
    global: String,
    listeners: Vec<String>,
    env: Vec<(String, OsString)>,
    terminal: Option<String>,
}

impl Launch {
    fn new(kind: Kind, global: &str) -> Launch {
        Launch {
            kind,
            global: global.to_owned(),
            listeners: Vec::new(),
            env: Vec::new(),
            terminal: None,
        }
    }

    fn listener(mut self, body: &str) -> Launch {
        self.listeners.push(body.to_owned());
        self
    }

    fn env(mut self, key: &str, value: impl Into<OsString>) -> Launch {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// On a pseudo-terminal, answering OpenSSL's prompt with `answer` (an
    /// empty answer never answers).
    fn on_terminal(mut self, answer: &str) -> Launch {
        self.terminal = Some(answer.to_owned());
        self
    }

    fn spawn(self, scratch: &Scratch) -> (Running, Vec<u16>, bool) {
        let ports: Vec<u16> = self.listeners.iter().map(|_| free_port()).collect();
        let mut conf = format!("log_type all\nlog_dest stderr\n{}\n", self.global);
        for (port, body) in ports.iter().zip(&self.listeners) {
            conf.push_str(&format!("listener {port} 127.0.0.1\n{body}\n"));
        }
        let conf = scratch.write("mosquitto.conf", conf);
        fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
        let (label, program, mut args): (&str, OsString, Vec<OsString>) = match self.kind {
            Kind::Starling => ("starling broker", STARLING.into(), vec!["broker".into()]),
            Kind::Mosquitto => ("mosquitto", tool("mosquitto").into(), Vec::new()),
        };
        args.extend(["-c".into(), conf.into_os_string()]);
        let on_terminal = self.terminal.is_some();
        let mut run = match &self.terminal {
            None => Run::program(label, program, args),
            Some(answer) => on_terminal_run(label, answer, program, args),
        };
        if self.kind == Kind::Starling {
            run = run.env("STARLING_DATA_DIR", fresh_dir(scratch, "data"));
        }
        run = run.env_remove(PASSPHRASE_FILE);
        for (key, value) in &self.env {
            run = run.env(key, value);
        }
        (run.spawn(), ports, on_terminal)
    }

    /// Starts it and waits until every listener accepts connections; panics
    /// with its output if it exits first.
    fn start(self, pairing: Pairing) -> TlsBroker {
        let kind = self.kind;
        let scratch = Scratch::new("tls-guide-broker");
        let (mut running, ports, on_terminal) = self.spawn(&scratch);
        let pid = if on_terminal {
            terminal_pid(&mut running, pairing)
        } else {
            running.pid()
        };
        let broker = TlsBroker {
            kind,
            ports,
            running,
            pid,
            on_terminal,
            _scratch: scratch,
        };
        broker.wait_listening(pairing);
        broker
    }

    /// Runs it, expecting start-up to fail: its output and status.
    fn fails(self, pairing: Pairing) -> Ended {
        let kind = self.kind;
        let scratch = Scratch::new("tls-guide-broker");
        let (mut running, _, on_terminal) = self.spawn(&scratch);
        let pid = on_terminal.then(|| terminal_pid(&mut running, pairing));
        let deadline = Instant::now() + WAIT;
        while !running.has_exited() {
            if Instant::now() > deadline {
                if let Some(pid) = pid {
                    kill_child(pid, running.pid());
                }
                panic!(
                    "{pairing}: the {kind:?} broker should have stopped at start-up; it \
                     printed:\n{}{}",
                    running.output.stdout(),
                    running.output.stderr()
                );
            }
            thread::sleep(POLL);
        }
        running.wait().into()
    }
}

/// A broker with its listeners' ports; killed on drop (by its process id).
struct TlsBroker {
    kind: Kind,
    ports: Vec<u16>,
    running: Running,
    /// The broker's own process id: on a terminal, `running` is the helper
    /// that holds the terminal.
    pid: u32,
    on_terminal: bool,
    _scratch: Scratch,
}

impl TlsBroker {
    fn port(&self) -> u16 {
        self.ports[0]
    }

    fn output(&self) -> String {
        format!(
            "{}{}",
            self.running.output.stdout(),
            self.running.output.stderr()
        )
    }

    /// Waits until the broker says it opened each listener (in Mosquitto's
    /// words, which Starling uses) and the listener accepts connections, and
    /// for Mosquitto, which opens its sockets before loading certificates,
    /// until it says it is running; panics with its output if it exits first.
    fn wait_listening(&self, pairing: Pairing) {
        let deadline = Instant::now() + WAIT;
        loop {
            let output = self.output();
            let waiting: Vec<u16> = self
                .ports
                .iter()
                .copied()
                .filter(|port| {
                    // "Opening ipv4 listen socket on port N." (Starling adds
                    // " (TLS)" before the period).
                    let opened = format!("Opening ipv4 listen socket on port {port}");
                    !(output.contains(&format!("{opened}."))
                        || output.contains(&format!("{opened} ")))
                        || TcpStream::connect(("127.0.0.1", *port)).is_err()
                })
                .collect();
            let running = self.kind == Kind::Starling || output.contains(" running\n");
            if waiting.is_empty() && running {
                return;
            }
            assert!(
                !self.exited(),
                "{pairing}: the {:?} broker exited before listening on {waiting:?}; it \
                 printed:\n{output}",
                self.kind
            );
            assert!(
                Instant::now() < deadline,
                "{pairing}: the {:?} broker is not listening on {waiting:?} after {WAIT:?}; it \
                 printed:\n{output}",
                self.kind
            );
            thread::sleep(POLL);
        }
    }

    /// Whether the broker process has exited (a zombie not yet reaped, or
    /// gone).
    fn exited(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|stat| {
                stat.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true)
    }

    /// `kill -HUP PID`.
    fn hang_up(&self) {
        assert!(!self.on_terminal);
        self.running.signal("HUP");
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        if self.on_terminal {
            kill_child(self.pid, self.running.pid());
        }
    }
}

/// `kill -KILL PID` for a broker this test started on a terminal, if it is
/// still the child of `helper` (the terminal helper): the helper's death
/// does not end it, since Mosquitto started as root changes its user (which
/// clears the helper's kill-on-death setting) and takes the terminal's
/// SIGHUP as "reload".
fn kill_child(pid: u32, helper: u32) {
    let parent = fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit(')').next()?.to_owned();
            after_name.split_whitespace().nth(1)?.parse::<u32>().ok()
        });
    if parent == Some(helper) {
        let _ = Command::new("sh")
            .args(["-c", "kill -KILL \"$0\"", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------
// A pseudo-terminal: tests/pty/answer.py.

/// The Python interpreter, once it is known to import paho-mqtt 2.x; panics
/// otherwise (the test fails, naming scripts/test).
fn python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let check = "import sys\nfrom importlib.metadata import version\n\
                         import paho.mqtt.client\nprint(version('paho-mqtt'))\n\
                         print(sys.executable)";
            let out = Run::program("python3", tool("python3"), ["-c", check]).run();
            let lines: Vec<&str> = out.stdout.lines().collect();
            assert!(
                out.code == Some(0) && lines.len() == 2 && lines[0].starts_with("2."),
                "python3 cannot import paho-mqtt 2.x: run scripts/test, which installs it; \
                 {out:?}"
            );
            PathBuf::from(lines[1])
        })
        .clone()
}

/// `program args` on a pseudo-terminal that answers `Enter PEM pass
/// phrase:` with `answer`. Its stdout is "PID n" then the terminal's output.
fn on_terminal_run(
    label: &str,
    answer: &str,
    program: impl Into<OsString>,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Run {
    let script = format!("{}/tests/pty/answer.py", env!("CARGO_MANIFEST_DIR"));
    let mut all: Vec<OsString> = vec![
        "-u".into(),
        "-B".into(),
        script.into(),
        PROMPT.into(),
        answer.into(),
        program.into(),
    ];
    all.extend(args.into_iter().map(Into::into));
    // The terminal is the only source of the pass phrase, whatever the
    // environment of the test run.
    Run::program(&format!("{label} (on a terminal)"), python(), all).env_remove(PASSPHRASE_FILE)
}

/// The process id the terminal helper prints first.
fn terminal_pid(running: &mut Running, pairing: Pairing) -> u32 {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = running.output.stdout();
        if let Some(line) = out.lines().next().filter(|_| out.contains('\n')) {
            return line
                .strip_prefix("PID ")
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("{pairing}: the terminal helper printed {out:?}"));
        }
        assert!(
            !running.has_exited() && Instant::now() < deadline,
            "{pairing}: the terminal helper printed no PID: {out:?} {}",
            running.output.stderr()
        );
        thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------
// Clients.

/// `-h HOST -p PORT --cafile CA`.
fn tls(host: &str, port: u16, ca: &str) -> Vec<String> {
    [
        "-h",
        host,
        "-p",
        &port.to_string(),
        "--cafile",
        &guide().arg(ca),
    ]
    .map(String::from)
    .to_vec()
}

/// `args` with `--cert NAME.crt --key NAME.key`.
fn cert(args: &[String], name: &str) -> Vec<String> {
    with(
        args,
        &[
            "--cert",
            &guide().arg(&format!("{name}.crt")),
            "--key",
            &guide().arg(&format!("{name}.key")),
        ],
    )
}

fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let mut all = base.to_vec();
    all.extend(more.iter().map(|s| s.to_string()));
    all
}

/// The client tool `name` (`pub` or `sub`) of the pairing.
fn client(pairing: Pairing, name: &str, args: &[String]) -> Run {
    match pairing.tools {
        Tools::Starling => Run::starling(name, args),
        Tools::Mosquitto if name == "sub" => Run::mosquitto_line_buffered("mosquitto_sub", args),
        Tools::Mosquitto => Run::mosquitto(&format!("mosquitto_{name}"), args),
        Tools::Paho => unreachable!("Paho runs tests/paho/tls_guide.py"),
    }
}

/// `sub ARGS -t FILTER... -C COUNT -v -q 1 -d`, returned once subscribed.
fn subscribed(pairing: Pairing, args: &[String], filters: &[&str], count: usize) -> Running {
    let mut all = args.to_vec();
    for filter in filters {
        all.extend(["-t".to_owned(), (*filter).to_owned()]);
    }
    all.extend(["-C", &count.to_string(), "-v", "-q", "1", "-d"].map(String::from));
    let mut running = client(pairing, "sub", &all).spawn();
    let deadline = Instant::now() + WAIT;
    while !running.output.stdout().contains("received SUBACK") {
        if running.has_exited() || Instant::now() > deadline {
            let done = Ended::from(running.wait());
            panic!("{pairing}: sub {all:?} did not subscribe: {done:?}");
        }
        thread::sleep(POLL);
    }
    running
}

/// `pub ARGS -t TOPIC -m PAYLOAD -q 1`, run to its end.
fn publish(pairing: Pairing, args: &[String], topic: &str, payload: &str) -> Ended {
    client(
        pairing,
        "pub",
        &with(args, &["-t", topic, "-m", payload, "-q", "1"]),
    )
    .run()
    .into()
}

/// `publish` that must succeed.
fn published(pairing: Pairing, args: &[String], topic: &str, payload: &str) {
    let done = publish(pairing, args, topic, payload);
    assert_eq!(
        (done.code, done.stderr.as_str()),
        (Some(0), ""),
        "{pairing}: pub {args:?} -t {topic}: {done:?}"
    );
}

/// The messages a `sub -v -d` printed: its lines other than debug lines.
fn messages(done: &Ended) -> Vec<&str> {
    done.stdout
        .lines()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed "))
        .collect()
}

/// A subscriber that must end with exactly these messages.
fn received(pairing: Pairing, sub: Running, expected: &[&str]) {
    let done = Ended::from(sub.wait());
    assert_eq!(
        (done.code, messages(&done)),
        (Some(0), expected.to_vec()),
        "{pairing}: the subscriber: {done:?}"
    );
}

/// A message from `pub` (with `pub_args`) reaches `sub` (with `sub_args`).
fn delivered(pairing: Pairing, sub_args: &[String], pub_args: &[String], topic: &str) {
    let payload = format!("to {topic}");
    let sub = subscribed(pairing, sub_args, &[topic], 1);
    published(pairing, pub_args, topic, &payload);
    received(pairing, sub, &[&format!("{topic} {payload}")]);
}

/// `pub` and `sub` both end with one of Mosquitto's `outcomes`, printing
/// nothing on stdout.
fn both_refused(pairing: Pairing, args: &[String], outcomes: &[Outcome], what: &str) {
    let done = publish(pairing, args, "refused/x", "x");
    assert_one_of(pairing, &format!("pub {what}"), &done, outcomes);
    let done: Ended = client(pairing, "sub", &with(args, &["-t", "refused/x", "-C", "1"]))
        .run()
        .into();
    assert_one_of(pairing, &format!("sub {what}"), &done, outcomes);
}

fn assert_one_of(pairing: Pairing, what: &str, done: &Ended, outcomes: &[Outcome]) {
    assert!(
        one_of(done, outcomes),
        "{pairing}: {what}: {done:?}\nexpected, as Mosquitto's tools end, one of {outcomes:?}"
    );
}

/// Whether the tool printed nothing on stdout and one of `outcomes`.
fn one_of(done: &Ended, outcomes: &[Outcome]) -> bool {
    done.stdout.is_empty() && outcomes.contains(&(done.stderr.as_str(), done.code))
}

/// A finished command: `Done` without its byte copy of stdout, so that
/// failures read plainly.
struct Ended {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl From<Done> for Ended {
    fn from(done: Done) -> Ended {
        Ended {
            stdout: done.stdout,
            stderr: done.stderr,
            code: done.code,
        }
    }
}

impl fmt::Debug for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exit status {:?}\n  stdout: {:?}\n  stderr: {:?}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn outcome(done: &Ended) -> (&str, Option<i32>) {
    (done.stderr.as_str(), done.code)
}

/// tests/paho/tls_guide.py with `args` (mosquitto_pub's TLS flags, then the
/// script's own); it must print PASS.
fn paho(pairing: Pairing, args: &[String], more: &[&str]) {
    let script = format!("{}/tests/paho/tls_guide.py", env!("CARGO_MANIFEST_DIR"));
    let mut all = vec!["-u".to_owned(), "-B".to_owned(), script];
    all.extend(with(args, more));
    let done = Ended::from(Run::program("paho tls_guide.py", python(), &all).run());
    assert!(
        done.code == Some(0) && done.stdout.starts_with("PASS"),
        "{pairing}: paho {all:?}: {done:?}"
    );
}

/// A Paho client subscribes to `topic`, publishes to it, and gets it back.
fn paho_delivered(pairing: Pairing, args: &[String], topic: &str) {
    let message = format!("{topic}=to {topic}");
    paho(
        pairing,
        args,
        &["-s", topic, "-m", &message, "--expect", &message],
    );
}

/// `openssl s_client -connect 127.0.0.1:PORT -brief -CAfile CA ARGS`, with
/// nothing to send: its output (stderr, where -brief writes) and status.
fn s_client(port: u16, ca: &str, args: &[&str]) -> Ended {
    let connect = format!("127.0.0.1:{port}");
    let mut all = vec![
        "s_client".to_owned(),
        "-connect".to_owned(),
        connect,
        "-brief".to_owned(),
        "-CAfile".to_owned(),
        guide().arg(ca),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    Run::program("openssl s_client", tool("openssl"), all)
        .run()
        .into()
}

/// `s_client` negotiates `version` (and `cipher` if given).
fn negotiates(pairing: Pairing, port: u16, args: &[&str], version: &str, cipher: Option<&str>) {
    let done = s_client(port, "ca.crt", args);
    let ok = done.code == Some(0)
        && done
            .stderr
            .contains(&format!("Protocol version: {version}\n"))
        && cipher.map_or(true, |c| {
            done.stderr.contains(&format!("Ciphersuite: {c}\n"))
        });
    assert!(
        ok,
        "{pairing}: s_client {args:?} should negotiate {version} {cipher:?}: {done:?}"
    );
}

/// `s_client` fails to negotiate.
fn cannot_negotiate(pairing: Pairing, port: u16, args: &[&str]) {
    let done = s_client(port, "ca.crt", args);
    assert!(
        done.code == Some(1) && !done.stderr.contains("Protocol version:"),
        "{pairing}: s_client {args:?} should fail: {done:?}"
    );
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
