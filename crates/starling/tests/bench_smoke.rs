//! `starling bench` against `starling broker`: every scenario runs for about a
//! second with small counts, and its JSON summary must add up (QoS 1 and 2:
//! nothing lost, nothing duplicated). No timing is asserted.
//!
//! The broker gets an unlimited queue (`max_queued_messages 0`), so that a
//! subscriber that lags behind a debug build loses nothing at any QoS.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_starling");

/// How long anything may take: the broker to listen, a run to finish.
const WAIT: Duration = Duration::from_secs(30);

/// A `starling broker` child on a free port of 127.0.0.1, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Broker {
    fn start() -> Broker {
        // A directory per broker: the tests of this file run at once.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("bench-smoke-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the scratch directory");
        for attempt in 1..=3 {
            let port = free_port();
            let conf = dir.join(format!("broker-{attempt}.conf"));
            let log = dir.join(format!("broker-{attempt}.log"));
            fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"),
            )
            .expect("write the broker configuration");
            let out = fs::File::create(&log).expect("create the broker log");
            // Its own store (persistence is on by default), empty.
            let data = dir.join(format!("data-{port}"));
            let _ = fs::remove_dir_all(&data);
            fs::create_dir_all(&data).expect("create the store directory");
            let mut child = Command::new(BIN)
                .arg("broker")
                .arg("-c")
                .arg(&conf)
                .env("STARLING_DATA_DIR", &data)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("clone the log"))
                .stderr(out)
                .spawn()
                .expect("start starling broker");
            let deadline = Instant::now() + WAIT;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            loop {
                if child.try_wait().expect("try_wait").is_some() {
                    break; // The port was taken meanwhile: try another.
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                    return Broker { child, port, log };
                }
                if Instant::now() >= deadline {
                    // Not left running behind the failed test.
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("the broker did not listen on {addr}");
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("starling broker did not start");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- broker log (last lines) ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The tests of this file each load the machine (every scenario; 5,000
/// connections): one at a time, so that neither measures the other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`SERIAL`] for the test (a failed test leaves it poisoned, not held).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Runs `starling bench ARGS --json --quiet` to its end; returns the summary.
fn bench(label: &str, port: Option<u16>, args: &[&str]) -> Value {
    let mut command = Command::new(BIN);
    command
        .arg("bench")
        .args(args)
        .args(["--json", "--quiet", "-i", label]);
    if let Some(port) = port {
        command.args(["-p", &port.to_string()]);
    }
    let output = command.output().expect("run starling bench");
    parse(label, &output)
}

fn parse(label: &str, output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{label}: bench failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{label}: the summary is not JSON ({e}):\n{stdout}"))
}

fn n(summary: &Value, key: &str) -> u64 {
    summary[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no `{key}` in {summary:#}"))
}

/// The counts of a message scenario: `fan` copies of every message sent.
fn check_delivery(label: &str, s: &Value, qos: u8, fan: u64) {
    let sent = n(s, "sent");
    let received = n(s, "received");
    let expected = n(s, "expected");
    assert!(sent > 0, "{label}: nothing sent: {s:#}");
    assert_eq!(
        expected,
        sent * fan,
        "{label}: expected != sent x {fan}: {s:#}"
    );
    assert_eq!(n(s, "duplicates"), 0, "{label}: duplicates: {s:#}");
    assert_eq!(
        n(s, "untracked"),
        0,
        "{label}: messages without header: {s:#}"
    );
    assert_eq!(
        received + n(s, "lost"),
        expected,
        "{label}: received + lost != expected: {s:#}"
    );
    assert!(
        s["errors"].as_array().is_some_and(Vec::is_empty),
        "{label}: errors: {s:#}"
    );
    if qos > 0 {
        assert_eq!(
            n(s, "acked"),
            sent,
            "{label}: not everything acknowledged: {s:#}"
        );
        assert_eq!(
            received, expected,
            "{label}: messages lost at QoS {qos}: {s:#}"
        );
    } else {
        assert!(received > 0, "{label}: nothing received: {s:#}");
    }
    assert!(
        s["latency_us"]["count"].as_u64() == Some(received),
        "{label}: one latency per message: {s:#}"
    );
}

#[test]
fn every_scenario_against_starling_broker() {
    let _serial = one_at_a_time();
    let broker = Broker::start();
    let port = broker.port;

    // `sub` counts what another process publishes: start it, wait until it
    // has subscribed, then publish from a `pub`.
    let mut sub = Command::new(BIN)
        .args([
            "bench",
            "sub",
            "-m",
            "2",
            "-q",
            "1",
            "-d",
            "8",
            "-t",
            "smoke/sub/%i",
        ])
        .args(["-p", &port.to_string(), "--json", "-i", "smoke-sub"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bench sub");
    let mut stderr = BufReader::new(sub.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("subscribed") {
        line.clear();
        let read = stderr
            .read_line(&mut line)
            .expect("read bench sub's stderr");
        assert!(read > 0, "bench sub ended before subscribing");
    }
    // Keep draining its stderr so that its progress lines never block it.
    let drain = thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));

    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "smoke-pub-feed",
            vec![
                "pub",
                "-c",
                "2",
                "-q",
                "1",
                "-r",
                "500",
                "-t",
                "smoke/sub/%i",
            ],
        ),
        ("smoke-conn", vec!["conn", "-c", "50"]),
        (
            "smoke-pub",
            vec![
                "pub",
                "-c",
                "2",
                "-q",
                "2",
                "-r",
                "500",
                "-t",
                "smoke/pub/%i",
            ],
        ),
        (
            "smoke-fanin-q0",
            vec![
                "fanin",
                "-c",
                "4",
                "-q",
                "0",
                "-r",
                "1000",
                "-t",
                "smoke/fanin0/%i",
            ],
        ),
        (
            "smoke-fanin-q1",
            vec![
                "fanin",
                "-c",
                "4",
                "-q",
                "1",
                "-r",
                "1000",
                "-t",
                "smoke/fanin1/%i",
            ],
        ),
        (
            "smoke-fanout-q0",
            vec![
                "fanout",
                "-m",
                "4",
                "-q",
                "0",
                "-r",
                "1000",
                "-t",
                "smoke/fanout0/%i",
            ],
        ),
        (
            "smoke-fanout-q1",
            vec!["fanout", "-m", "4", "-q", "1", "-t", "smoke/fanout1/%i"],
        ),
        (
            "smoke-pairs-q0",
            vec![
                "pairs",
                "-c",
                "4",
                "-q",
                "0",
                "-r",
                "1000",
                "-t",
                "smoke/pairs0/%i",
            ],
        ),
        (
            "smoke-pairs-q1",
            vec!["pairs", "-c", "4", "-q", "1", "-t", "smoke/pairs1/%i"],
        ),
        (
            "smoke-pairs-q2",
            vec!["pairs", "-c", "4", "-q", "2", "-t", "smoke/pairs2/%i"],
        ),
        (
            "smoke-pairs-v5-q2",
            vec![
                "pairs",
                "-V",
                "5",
                "-c",
                "4",
                "-q",
                "2",
                "-t",
                "smoke/pairs5/%i",
            ],
        ),
        (
            "smoke-latency",
            vec!["latency", "-q", "1", "-r", "1000", "-t", "smoke/latency/%i"],
        ),
    ];
    // Every run at once: they use their own topics and client identifiers.
    let handles: Vec<_> = runs
        .into_iter()
        .map(|(label, mut args)| {
            args.extend(["-d", "1"]);
            thread::spawn(move || (label, bench(label, Some(port), &args)))
        })
        .collect();
    let discard = thread::spawn(|| {
        bench(
            "smoke-discard",
            None,
            &["pub", "--discard", "-d", "1", "--threads", "1"],
        )
    });
    let results: Vec<(&str, Value)> = handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .collect();

    for (label, s) in &results {
        let s = s.clone();
        match *label {
            "smoke-conn" => {
                let c = &s["connections"];
                assert_eq!(c["connected"].as_u64(), Some(50), "{label}: {s:#}");
                assert_eq!(c["failed"].as_u64(), Some(0), "{label}: {s:#}");
                assert_eq!(c["dropped"].as_u64(), Some(0), "{label}: {s:#}");
            }
            "smoke-pub" | "smoke-pub-feed" => {
                assert!(n(&s, "sent") > 0, "{label}: {s:#}");
                assert_eq!(n(&s, "acked"), n(&s, "sent"), "{label}: {s:#}");
            }
            "smoke-fanin-q0" | "smoke-pairs-q0" => check_delivery(label, &s, 0, 1),
            "smoke-fanout-q0" => check_delivery(label, &s, 0, 4),
            "smoke-fanout-q1" => check_delivery(label, &s, 1, 4),
            "smoke-fanin-q1" | "smoke-pairs-q1" | "smoke-latency" => {
                check_delivery(label, &s, 1, 1)
            }
            "smoke-pairs-q2" | "smoke-pairs-v5-q2" => check_delivery(label, &s, 2, 1),
            other => unreachable!("no check for {other}"),
        }
    }
    let latency = &results
        .iter()
        .find(|(l, _)| *l == "smoke-latency")
        .expect("latency run")
        .1;
    assert!(
        latency["latency_us"]["p99"]
            .as_f64()
            .is_some_and(|p| p > 0.0),
        "{latency:#}"
    );

    let fed = n(
        &results
            .iter()
            .find(|(l, _)| *l == "smoke-pub-feed")
            .expect("feed run")
            .1,
        "sent",
    );
    let output = sub.wait_with_output().expect("wait for bench sub");
    let _ = drain.join();
    let s = parse("smoke-sub", &output);
    // Two subscribers, each receiving everything both publishers sent.
    assert_eq!(n(&s, "received"), 2 * fed, "smoke-sub: {s:#}");
    assert_eq!(n(&s, "lost"), 0, "smoke-sub: {s:#}");
    assert_eq!(n(&s, "duplicates"), 0, "smoke-sub: {s:#}");

    let d = discard.join().expect("discard thread");
    assert!(n(&d, "sent") > 0, "smoke-discard: {d:#}");
    drop(broker);
}

/// Issue 17, the small version of the 19,000-connection run in
/// `bench/RESULTS.md`: 5,000 idle connections from three loopback source
/// addresses, held past their keep alive (pings) while a light publish load
/// runs; every one opens and stays open, and the broker's memory per
/// connection is reported. No timing or memory assertion: those are
/// measured by hand, beside Mosquitto.
#[test]
fn five_thousand_idle_connections_from_several_source_addresses_stay_open() {
    let _serial = one_at_a_time();
    let broker = Broker::start();
    let port = broker.port.to_string();
    let pid = broker.child.id().to_string();
    let load = {
        let port = port.clone();
        thread::spawn(move || {
            bench(
                "smoke-light-load",
                None,
                &[
                    "pub", "-p", &port, "-c", "2", "-r", "100", "-q", "1", "-d", "4",
                ],
            )
        })
    };
    let s = bench(
        "smoke-conn-5000",
        None,
        &[
            "conn",
            "-p",
            &port,
            "-c",
            "5000",
            "--bind",
            "127.0.0.1,127.0.0.2,127.0.0.3",
            "-k",
            "4",
            "-d",
            "4",
            "--watch-pid",
            &pid,
        ],
    );
    let c = &s["connections"];
    assert_eq!(c["connected"].as_u64(), Some(5000), "{s:#}");
    assert_eq!(c["failed"].as_u64(), Some(0), "{s:#}");
    assert_eq!(c["dropped"].as_u64(), Some(0), "{s:#}");
    let per_connection = s["broker_rss"]["per_connection_bytes"].as_f64();
    assert!(per_connection.is_some(), "no broker memory reported: {s:#}");
    eprintln!(
        "5,000 idle connections: {:.0} B of broker RSS each, {:.0} connects/s",
        per_connection.unwrap_or_default(),
        c["rate"].as_f64().unwrap_or_default()
    );
    let light = load.join().expect("the light publish load");
    assert_eq!(n(&light, "acked"), n(&light, "sent"), "{light:#}");
}
