//! `starling broker` as a user runs it: configuration errors stop start-up with
//! every error and its line; `-p` picks the local-only default listener; SIGTERM
//! shuts down cleanly.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_starling");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A new, empty store directory for one broker (`STARLING_DATA_DIR`):
/// persistence is on by default, and no two brokers may share a store.
/// Removed on drop.
struct DataDir(std::path::PathBuf);

impl DataDir {
    fn new(name: &str) -> DataDir {
        let dir = std::env::temp_dir().join(format!("starling-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        DataDir(dir)
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("starling-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// Connects to `port`, retrying until the broker listens or 10 s pass.
fn connect(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => return stream,
            Err(e) if Instant::now() > deadline => panic!("broker not listening on {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn every_configuration_error_is_reported_with_its_line() {
    let path = temp_file(
        "bad.conf",
        "# a comment\nlistener 1883x\nmax_keepalive 70000\nno_such_directive 1\nautosave_interval 1800\n",
    );
    let data = DataDir::new("bad-conf-data");
    let out = Command::new(BIN)
        .args(["broker", "-c"])
        .arg(&path)
        .env("STARLING_DATA_DIR", &data.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for expected in [
        format!("Error: {file}:2: listener"),
        format!("Error: {file}:3: max_keepalive: 70000 is out of range"),
        format!("Error: {file}:4: unknown directive 'no_such_directive'"),
        format!("Warning: {file}:5: autosave_interval"),
        "3 errors in the configuration; not starting.".to_string(),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
}

#[test]
fn serves_on_the_given_port_and_stops_on_sigterm() {
    let port = free_port();
    let data = DataDir::new("sigterm-data");
    let child = Command::new(BIN)
        .args(["broker", "-p", &port.to_string()])
        .env("STARLING_DATA_DIR", &data.0)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut broker = Broker(child);
    let mut stream = connect(port);
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // A 3.1.1 CONNECT with client id "cli": CONNACK accepted.
    stream
        .write_all(&[
            0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 3, b'c', b'l', b'i',
        ])
        .unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);

    let status = Command::new("kill")
        .args(["-TERM", &broker.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = broker.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "broker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit:?}");
    let mut stderr = String::new();
    broker
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("New client connected from 127.0.0.1:"),
        "{stderr}"
    );
    assert!(stderr.contains("as cli (p2, c1, k60)."), "{stderr}");
    // The soft open file limit is raised to the hard one (issue 17), and the
    // log says how many clients that leaves room for.
    let hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .unwrap();
    assert!(
        stderr.contains(&format!("Open file limit {hard}: room for about ")),
        "{stderr}"
    );
    // The 3.1.1 client is closed at shutdown.
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

#[test]
fn the_toml_example_loads_and_runs() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../starling.toml");
    let port = free_port();
    let data = DataDir::new("toml-data");
    let child = Command::new(BIN)
        .args(["broker", "-c", example, "-p", &port.to_string()])
        .env("STARLING_DATA_DIR", &data.0)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _broker = Broker(child);
    drop(connect(port));
}
