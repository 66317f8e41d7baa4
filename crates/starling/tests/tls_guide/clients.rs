//! The clients: `starling pub`/`sub`, `mosquitto_pub`/`sub`, Paho
//! (tests/paho/tls_guide.py) and `openssl s_client`, and the outcomes
//! Mosquitto's tools end with.

use super::*;

/// `-h HOST -p PORT --cafile CA`.
pub(crate) fn tls(host: &str, port: u16, ca: &str) -> Vec<String> {
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
pub(crate) fn cert(args: &[String], name: &str) -> Vec<String> {
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

pub(crate) fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let mut all = base.to_vec();
    all.extend(more.iter().map(|s| s.to_string()));
    all
}

/// The client tool `name` (`pub` or `sub`) of the pairing.
pub(crate) fn client(pairing: Pairing, name: &str, args: &[String]) -> Run {
    match pairing.tools {
        Tools::Starling => Run::starling(name, args),
        Tools::Mosquitto if name == "sub" => Run::mosquitto_line_buffered("mosquitto_sub", args),
        Tools::Mosquitto => Run::mosquitto(&format!("mosquitto_{name}"), args),
        Tools::Paho => unreachable!("Paho runs tests/paho/tls_guide.py"),
    }
}

/// `sub ARGS -t FILTER... -C COUNT -v -q 1 -d`, returned once subscribed.
pub(crate) fn subscribed(
    pairing: Pairing,
    args: &[String],
    filters: &[&str],
    count: usize,
) -> Running {
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
pub(crate) fn publish(pairing: Pairing, args: &[String], topic: &str, payload: &str) -> Ended {
    client(
        pairing,
        "pub",
        &with(args, &["-t", topic, "-m", payload, "-q", "1"]),
    )
    .run()
    .into()
}

/// `publish` that must succeed.
pub(crate) fn published(pairing: Pairing, args: &[String], topic: &str, payload: &str) {
    let done = publish(pairing, args, topic, payload);
    assert_eq!(
        (done.code, done.stderr.as_str()),
        (Some(0), ""),
        "{pairing}: pub {args:?} -t {topic}: {done:?}"
    );
}

/// The messages a `sub -v -d` printed: its lines other than debug lines.
pub(crate) fn messages(done: &Ended) -> Vec<&str> {
    done.stdout
        .lines()
        .filter(|line| !line.starts_with("Client ") && !line.starts_with("Subscribed "))
        .collect()
}

/// A subscriber that must end with exactly these messages.
pub(crate) fn received(pairing: Pairing, sub: Running, expected: &[&str]) {
    let done = Ended::from(sub.wait());
    assert_eq!(
        (done.code, messages(&done)),
        (Some(0), expected.to_vec()),
        "{pairing}: the subscriber: {done:?}"
    );
}

/// A message from `pub` (with `pub_args`) reaches `sub` (with `sub_args`).
pub(crate) fn delivered(pairing: Pairing, sub_args: &[String], pub_args: &[String], topic: &str) {
    let payload = format!("to {topic}");
    let sub = subscribed(pairing, sub_args, &[topic], 1);
    published(pairing, pub_args, topic, &payload);
    received(pairing, sub, &[&format!("{topic} {payload}")]);
}

/// `pub` and `sub` both end with one of Mosquitto's `outcomes`, printing
/// nothing on stdout.
pub(crate) fn both_refused(pairing: Pairing, args: &[String], outcomes: &[Outcome], what: &str) {
    let done = publish(pairing, args, "refused/x", "x");
    assert_one_of(pairing, &format!("pub {what}"), &done, outcomes);
    let done: Ended = client(pairing, "sub", &with(args, &["-t", "refused/x", "-C", "1"]))
        .run()
        .into();
    assert_one_of(pairing, &format!("sub {what}"), &done, outcomes);
}

pub(crate) fn assert_one_of(pairing: Pairing, what: &str, done: &Ended, outcomes: &[Outcome]) {
    assert!(
        one_of(done, outcomes),
        "{pairing}: {what}: {done:?}\nexpected, as Mosquitto's tools end, one of {outcomes:?}"
    );
}

/// Whether the tool printed nothing on stdout and one of `outcomes`.
pub(crate) fn one_of(done: &Ended, outcomes: &[Outcome]) -> bool {
    done.stdout.is_empty() && outcomes.contains(&(done.stderr.as_str(), done.code))
}

/// A finished command: `Done` without its byte copy of stdout, so that
/// failures read plainly.
pub(crate) struct Ended {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) code: Option<i32>,
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

pub(crate) fn outcome(done: &Ended) -> (&str, Option<i32>) {
    (done.stderr.as_str(), done.code)
}

/// tests/paho/tls_guide.py with `args` (mosquitto_pub's TLS flags, then the
/// script's own); it must print PASS.
pub(crate) fn paho(pairing: Pairing, args: &[String], more: &[&str]) {
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
pub(crate) fn paho_delivered(pairing: Pairing, args: &[String], topic: &str) {
    let message = format!("{topic}=to {topic}");
    paho(
        pairing,
        args,
        &["-s", topic, "-m", &message, "--expect", &message],
    );
}

/// `openssl s_client -connect 127.0.0.1:PORT -brief -CAfile CA ARGS`, with
/// nothing to send: its output (stderr, where -brief writes) and status.
pub(crate) fn s_client(port: u16, ca: &str, args: &[&str]) -> Ended {
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
pub(crate) fn negotiates(
    pairing: Pairing,
    port: u16,
    args: &[&str],
    version: &str,
    cipher: Option<&str>,
) {
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
pub(crate) fn cannot_negotiate(pairing: Pairing, port: u16, args: &[&str]) {
    let done = s_client(port, "ca.crt", args);
    assert!(
        done.code == Some(1) && !done.stderr.contains("Protocol version:"),
        "{pairing}: s_client {args:?} should fail: {done:?}"
    );
}
