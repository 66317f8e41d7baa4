//! MQTT.js in Debian's headless Chromium against `starling broker`'s
//! `protocol websockets` listener, with TCP clients on the other side.
//!
//! Each test writes a mosquitto.conf with a TCP listener and a WebSocket
//! listener on free ports of 127.0.0.1, starts the broker, subscribes
//! `mosquitto_sub` to `browser/test` over TCP, then runs
//! `node tests/browser/run.mjs`: it opens tests/browser/index.html in
//! Chromium (MQTT.js subscribes to `browser/#` and publishes "hello from
//! chromium" at QoS 1 over `ws://`), publishes "hello from tcp" over TCP,
//! waits for both messages in the page and takes a screenshot. The test then
//! checks that the runner passed, that the TCP subscriber got the browser's
//! message, and that the screenshot is a PNG of the page's size and of some
//! substance.
//!
//! Chromium and the npm packages (MQTT.js, playwright-core) are installed by
//! scripts/test (`apt-get install chromium`, `npm ci` in tests/browser); if
//! either is missing the test fails, naming scripts/test. It never skips.

#![cfg(unix)]

mod common;

use std::ffi::OsString;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, fresh_dir, is_subscribed, tool, Peer, Scratch, HOST, WAIT};

/// Debian's chromium, which run.mjs drives (Playwright's own browsers cannot
/// be downloaded here).
const CHROMIUM: &str = "/usr/bin/chromium";

/// How long the runner may take: Chromium's start, the page, two round trips
/// and a screenshot take 2 to 3 s; run.mjs gives up by itself after 25 s.
const RUNNER_DEADLINE: Duration = Duration::from_secs(30);

/// The viewport run.mjs sets, hence the screenshot's size.
const VIEWPORT: (u32, u32) = (800, 600);

/// A screenshot of the page with its status and two messages is about 30 kB;
/// an empty white page about 3 kB.
const MIN_SCREENSHOT_BYTES: usize = 10_000;

fn browser_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2);
    root.expect("the workspace root").join("tests/browser")
}

/// `node`, once Chromium and the npm packages are known to be installed;
/// panics naming scripts/test otherwise.
fn prerequisites() -> PathBuf {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).is_file() {
        missing.push(format!("Debian's chromium ({CHROMIUM})"));
    }
    let modules = browser_dir().join("node_modules");
    for file in ["mqtt/dist/mqtt.min.js", "playwright-core/package.json"] {
        let path = modules.join(file);
        if !path.is_file() {
            missing.push(path.display().to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "missing {}: run scripts/test, which installs Debian's chromium and runs \
         `npm ci` in tests/browser",
        missing.join(", ")
    );
    tool("node")
}

/// `starling broker -c FILE -v` with a TCP and a WebSocket listener; killed
/// on drop, its log printed when the test is failing.
struct Broker {
    child: Child,
    log: PathBuf,
    tcp: u16,
    ws: u16,
}

impl Broker {
    /// Writes `conf(tcp, ws)` for two free ports and starts the broker,
    /// returning once both accept connections. A port taken in the meantime
    /// makes the broker exit: it is retried with others.
    fn start(scratch: &Scratch, conf: impl Fn(u16, u16) -> String) -> Broker {
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let (tcp, ws) = (free_port(), free_port());
            let file = scratch.path(&format!("mosquitto-{attempt}.conf"));
            fs::write(&file, conf(tcp, ws)).expect("write the configuration");
            let log = scratch.path(&format!("broker-{attempt}.log"));
            let out = File::create(&log).expect("create the broker log");
            let mut child = Command::new(env!("CARGO_BIN_EXE_starling"))
                .arg("broker")
                .arg("-c")
                .arg(&file)
                .arg("-v")
                .env(
                    "STARLING_DATA_DIR",
                    fresh_dir(scratch, &format!("data-{attempt}")),
                )
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("clone the log"))
                .stderr(out)
                .spawn()
                .expect("start starling");
            let deadline = Instant::now() + WAIT;
            loop {
                if child.try_wait().expect("try_wait").is_some() {
                    failures.push(read(&log));
                    break;
                }
                let up = [tcp, ws].iter().all(|&port| {
                    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
                });
                if up {
                    return Broker {
                        child,
                        log,
                        tcp,
                        ws,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("starling did not listen on {tcp} and {ws}:\n{}", read(&log));
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        panic!("starling did not start:\n{}", failures.join("\n---\n"));
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- starling log ---\n{}", read(&self.log));
        }
    }
}

fn read(path: &Path) -> String {
    fs::read(path).map_or_else(
        |e| format!("(cannot read {}: {e})", path.display()),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// One browser run: which MQTT.js protocol version, what the WebSocket
/// listener says besides `protocol websockets`, and who publishes over TCP.
struct Case<'a> {
    label: &'a str,
    /// MQTT.js's `protocolVersion`: "4" (3.1.1) or "5".
    mqtt_version: &'a str,
    /// The port run.mjs serves the page on, when the configuration names it
    /// (`websockets_origin`); else run.mjs picks one.
    http_port: Option<u16>,
    /// Lines after `protocol websockets`.
    websockets_options: String,
    /// A command taking mosquitto_pub's flags.
    publisher: Vec<OsString>,
}

fn run_in_chromium(case: Case<'_>) {
    let node = prerequisites();
    let scratch = Scratch::new(case.label);
    let broker = Broker::start(&scratch, |tcp, ws| {
        format!(
            "allow_anonymous true\n\
             listener {tcp} {HOST}\n\
             listener {ws} {HOST}\n\
             protocol websockets\n\
             {}",
            case.websockets_options
        )
    });

    let v = if case.mqtt_version == "5" {
        "mqttv5"
    } else {
        "mqttv311"
    };
    let tcp_port = broker.tcp.to_string();
    let subscriber = Peer::spawn_line_buffered(
        &tool("mosquitto_sub"),
        &[
            "-h",
            HOST,
            "-p",
            &tcp_port,
            "-V",
            v,
            "-t",
            "browser/test",
            "-q",
            "1",
            "-v",
            "-d",
        ],
    );
    subscriber.wait_for_stdout("its SUBACK", is_subscribed);

    let screenshot = scratch.path("page.png");
    let output = scratch.path("run.log");
    let mut command = Command::new(&node);
    command
        .arg(browser_dir().join("run.mjs"))
        .args(["--ws-port", &broker.ws.to_string()])
        .args(["--tcp-port", &tcp_port])
        .args(["--mqtt-version", case.mqtt_version])
        .arg("--screenshot")
        .arg(&screenshot);
    if let Some(port) = case.http_port {
        command.args(["--http-port", &port.to_string()]);
    }
    let out = File::create(&output).expect("create the runner's log");
    let started = Instant::now();
    let mut runner = command
        .arg("--")
        .args(&case.publisher)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone the runner's log"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", node.display()));
    let status = loop {
        if let Some(status) = runner.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() >= RUNNER_DEADLINE {
            let _ = runner.kill();
            let _ = runner.wait();
            panic!(
                "run.mjs did not finish within {RUNNER_DEADLINE:?}; it printed:\n{}",
                read(&output)
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "run.mjs failed ({status}); its screenshot, if any, is {}; it printed:\n{}",
        screenshot.display(),
        read(&output)
    );
    eprintln!(
        "run.mjs passed in {:.1?}:\n{}",
        started.elapsed(),
        read(&output)
    );

    subscriber.wait_for_stdout("the browser's message over TCP", |line| {
        line == "browser/test hello from chromium"
    });
    check_screenshot(&screenshot);
}

/// The file is a PNG of the viewport's size, and not an empty page.
fn check_screenshot(path: &Path) {
    let bytes =
        fs::read(path).unwrap_or_else(|e| panic!("no screenshot at {}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.get(12..16) == Some(b"IHDR"),
        "{} is not a PNG",
        path.display()
    );
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(
        (be32(16), be32(20)),
        VIEWPORT,
        "the screenshot's width and height"
    );
    assert!(
        bytes.len() >= MIN_SCREENSHOT_BYTES,
        "the screenshot has only {} bytes: an empty page?",
        bytes.len()
    );
}

/// Mosquitto 2.0's WebSocket listener: any path, any origin; MQTT.js's
/// default protocol (3.1.1); mosquitto_pub over TCP.
#[test]
fn mqtt_js_3_1_1_in_chromium_and_mosquitto_clients_over_tcp() {
    run_in_chromium(Case {
        label: "browser-v311",
        mqtt_version: "4",
        http_port: None,
        websockets_options: String::new(),
        publisher: vec![tool("mosquitto_pub").into()],
    });
}

/// `websockets_path /mqtt` and `websockets_origin` naming the page's origin
/// (the browser sends `Origin: http://127.0.0.1:PORT`); MQTT 5; `starling pub`
/// over TCP.
#[test]
fn mqtt_js_5_in_chromium_through_websockets_path_and_origin() {
    let http_port = free_port();
    run_in_chromium(Case {
        label: "browser-v5",
        mqtt_version: "5",
        http_port: Some(http_port),
        websockets_options: format!(
            "websockets_path /mqtt\nwebsockets_origin http://{HOST}:{http_port}\n"
        ),
        publisher: vec![env!("CARGO_BIN_EXE_starling").into(), "pub".into()],
    });
}
