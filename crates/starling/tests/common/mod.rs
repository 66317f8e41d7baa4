//! Harness for the interoperability tests: real brokers (`starling broker`
//! and Debian's `mosquitto`) as child processes on free ports of 127.0.0.1,
//! and real peers (mosquitto_pub / mosquitto_sub, Paho scripts, tshark) as
//! child processes whose output is read line by line while they run.
//!
//! Nothing here sleeps for a fixed time to let something happen: a test waits
//! for a condition (a port accepting connections, a line of output, a process
//! exit) and fails when its deadline passes. A tool that is missing fails the
//! test with a message naming scripts/test, which installs every peer.

#![allow(dead_code)]

pub(crate) mod raw;
pub(crate) mod restartable;
pub(crate) mod tools;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long a test waits for anything: a broker to listen, a line, an exit.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The only address the tests' peers connect to.
pub(crate) const HOST: &str = "127.0.0.1";

/// How often a wait on something that gives no notification polls it.
const POLL: Duration = Duration::from_millis(5);

/// The absolute path of an installed tool, searched in `PATH` and then in the
/// sbin directories (Debian puts `mosquitto` in /usr/sbin, which a non-root
/// `PATH` may lack). Panics, never skips, when it is not installed.
pub(crate) fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let sbin = ["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(sbin)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed (not found in PATH nor in the sbin directories): \
                 run scripts/test, which installs the test peers \
                 (mosquitto, mosquitto-clients, tshark, paho-mqtt) before running the tests"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A directory of its own under Cargo's scratch directory for integration
/// tests, removed when the test passes and kept (and named) when it fails.
pub(crate) struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub(crate) fn new(label: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        Scratch { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `contents` to `name` (creating its directories); its path.
    pub(crate) fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("test files kept in {}", self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `name` under `scratch` as a new, empty directory: a broker's store
/// directory (`STARLING_DATA_DIR`), so that no two brokers share a store.
pub(crate) fn fresh_dir(scratch: &Scratch, name: &str) -> PathBuf {
    let dir = scratch.path(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A port of 127.0.0.1 that was free a moment ago: bound, read and released.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("cannot bind 127.0.0.1:0")
        .port()
}

/// Which broker a [`Broker`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum BrokerKind {
    /// `starling broker -p PORT -v`, the binary of this package.
    Starling,
    /// Debian's `mosquitto -p PORT -v`, the reference.
    Mosquitto,
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BrokerKind::Starling => "starling",
            BrokerKind::Mosquitto => "mosquitto",
        })
    }
}

/// A broker child process listening on a free port; killed on drop, and its
/// log printed when the test is failing.
pub(crate) struct Broker {
    kind: BrokerKind,
    port: u16,
    child: Child,
    log: PathBuf,
    _scratch: Scratch,
}

impl Broker {
    pub(crate) fn starling() -> Broker {
        Broker::start(BrokerKind::Starling)
    }

    pub(crate) fn mosquitto() -> Broker {
        Broker::start(BrokerKind::Mosquitto)
    }

    /// Starts the broker on a free port and returns once the port accepts
    /// connections. The port is free when chosen but another process may take
    /// it before the broker binds it; a broker that exits early is retried on
    /// another port.
    pub(crate) fn start(kind: BrokerKind) -> Broker {
        let scratch = Scratch::new(&kind.to_string());
        let mut failures = Vec::new();
        for attempt in 1..=3 {
            let port = free_port();
            let log = scratch.path(&format!("broker-{attempt}.log"));
            let out = File::create(&log).expect("cannot create the broker log");
            let err = out.try_clone().expect("cannot clone the broker log");
            let mut command = match kind {
                BrokerKind::Starling => Command::new(env!("CARGO_BIN_EXE_starling")),
                BrokerKind::Mosquitto => Command::new(tool("mosquitto")),
            };
            if kind == BrokerKind::Starling {
                // Its own store (persistence is on by default): no state from
                // another test, nor from an earlier attempt, is restored.
                command.arg("broker").env(
                    "STARLING_DATA_DIR",
                    fresh_dir(&scratch, &format!("data-{attempt}")),
                );
            }
            command
                .args(["-p", &port.to_string(), "-v"])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
            match wait_until_listening(&mut child, kind, port, &log) {
                Ok(()) => {
                    return Broker {
                        kind,
                        port,
                        child,
                        log,
                        _scratch: scratch,
                    }
                }
                Err(failure) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    failures.push(failure);
                }
            }
        }
        panic!("{kind} did not start:\n{}", failures.join("\n"));
    }

    pub(crate) fn kind(&self) -> BrokerKind {
        self.kind
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// What the broker has logged so far.
    pub(crate) fn log_text(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- {} log (port {}) ---\n{}",
                self.kind,
                self.port,
                self.log_text()
            );
        }
    }
}

/// Waits until the broker accepts connections on its port; `Err` if it exits
/// first (the port was taken in the meantime, say).
fn wait_until_listening(
    child: &mut Child,
    kind: BrokerKind,
    port: u16,
    log: &Path,
) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Err(format!(
                "{kind} exited ({status}) before listening on port {port}; its log:\n{}",
                read_log(log)
            ));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{kind} did not accept connections on {addr} within {WAIT:?}; its log:\n{}",
                read_log(log)
            );
        }
        thread::sleep(POLL);
    }
}

fn read_log(log: &Path) -> String {
    fs::read(log).map_or_else(
        |e| format!("(cannot read {}: {e})", log.display()),
        |bytes| String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// What a peer printed so far, line by line, and how many of its two output
/// streams are still open.
#[derive(Default)]
struct Lines {
    stdout: Vec<String>,
    stderr: Vec<String>,
    open: usize,
}

#[derive(Default)]
struct Output {
    lines: Mutex<Lines>,
    changed: Condvar,
}

/// A peer child process: its stdout and stderr are read by two threads as it
/// writes them, so a test can wait for a line while the peer runs. Ended on
/// drop if still running (SIGTERM, then SIGKILL).
pub(crate) struct Peer {
    label: String,
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    reaped: bool,
}

/// A peer that has exited, with everything it printed.
pub(crate) struct Finished {
    pub(crate) label: String,
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: Vec<String>,
}

impl Peer {
    /// Starts `program` with `args`.
    pub(crate) fn spawn<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Peer {
        Peer::spawn_env(program, args, &[])
    }

    /// Starts `program` with `args` and the environment variables `envs`
    /// added to the test's.
    pub(crate) fn spawn_env<S: AsRef<OsStr>>(
        program: &Path,
        args: &[S],
        envs: &[(&str, &OsStr)],
    ) -> Peer {
        let label = std::iter::once(program.as_os_str())
            .chain(args.iter().map(AsRef::as_ref))
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{label}`: {e}"));
        let output = Arc::new(Output::default());
        output.lines.lock().unwrap().open = 2;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            read_lines(stdout, Arc::clone(&output), |lines| &mut lines.stdout),
            read_lines(stderr, Arc::clone(&output), |lines| &mut lines.stderr),
        ];
        Peer {
            label,
            child,
            output,
            readers,
            reaped: false,
        }
    }

    /// Starts `program` with its stdout line-buffered (`stdbuf -oL`): the C
    /// clients fully buffer a pipe, and a test must see "Subscribed" when it is
    /// printed. stdbuf execs the program, so the child's pid is the program's.
    pub(crate) fn spawn_line_buffered<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Peer {
        let stdbuf = tool("stdbuf");
        let mut full: Vec<OsString> = vec!["-oL".into(), program.into()];
        full.extend(args.iter().map(|arg| arg.as_ref().to_owned()));
        let mut peer = Peer::spawn(&stdbuf, &full);
        let prefix = format!("{} -oL ", stdbuf.display());
        peer.label = peer.label.replacen(&prefix, "", 1);
        peer
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a line of stdout satisfies `pred` and returns it; panics
    /// with everything printed so far when the peer exits or the deadline
    /// passes first.
    pub(crate) fn wait_for_stdout(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, |lines| lines.stdout.iter().find(|l| pred(l)).cloned())
    }

    /// Waits until a line of stderr satisfies `pred` and returns it.
    pub(crate) fn wait_for_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_for(what, |lines| lines.stderr.iter().find(|l| pred(l)).cloned())
    }

    /// Whether a line of stdout satisfies `pred` within `timeout`; unlike
    /// the other waits, not finding one is an answer, not a failure.
    pub(crate) fn stdout_within(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            if lines.stdout.iter().any(|l| pred(l)) {
                return true;
            }
            let now = Instant::now();
            if lines.open == 0 || now >= deadline {
                return false;
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until `found` finds something in the output so far.
    pub(crate) fn wait_for_output<T>(
        &self,
        what: &str,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        self.wait_for(what, |lines| found(&lines.stdout))
    }

    fn wait_for<T>(&self, what: &str, found: impl Fn(&Lines) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            if let Some(hit) = found(&lines) {
                return hit;
            }
            let now = Instant::now();
            if lines.open == 0 || now >= deadline {
                let why = if lines.open == 0 {
                    "it closed its output"
                } else {
                    "the deadline passed"
                };
                panic!(
                    "`{}`: waited for {what}, but {why}; it printed:\n{}",
                    self.label,
                    show(&lines.stdout, &lines.stderr)
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits for the peer to exit by itself, within the deadline.
    pub(crate) fn wait(mut self) -> Finished {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return self.finish(status);
            }
            if Instant::now() >= deadline {
                let status = self.terminate();
                let finished = self.finish(status);
                panic!(
                    "`{}` did not exit within {WAIT:?}; it printed:\n{finished}",
                    finished.label
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Ends the peer with SIGKILL: it gets no chance to say goodbye.
    pub(crate) fn kill(mut self) -> Finished {
        self.child.kill().expect("kill");
        let status = self.child.wait().expect("wait");
        self.finish(status)
    }

    /// Sends SIGINT to the peer (as Ctrl-C would) and waits for it to exit.
    pub(crate) fn interrupt(self) -> Finished {
        assert!(
            signal(self.pid(), "INT"),
            "cannot send SIGINT to `{}`",
            self.label
        );
        self.wait()
    }

    /// Ends the peer with SIGTERM, which lets it end what it started (tshark
    /// stops its dumpcap), then SIGKILL if it is still running after a
    /// while; reaps it.
    fn terminate(&mut self) -> ExitStatus {
        if signal(self.pid(), "TERM") {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return status;
                }
                thread::sleep(POLL);
            }
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait")
    }

    fn finish(&mut self, status: ExitStatus) -> Finished {
        self.reaped = true;
        for reader in self.readers.drain(..) {
            reader.join().expect("output reader panicked");
        }
        let mut lines = self.output.lines.lock().unwrap();
        Finished {
            label: self.label.clone(),
            status,
            stdout: std::mem::take(&mut lines.stdout),
            stderr: std::mem::take(&mut lines.stderr),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if !self.reaped {
            self.terminate();
        }
    }
}

/// Sends a signal to a process this test started, with the shell's `kill`
/// (std has no API for it); whether it was sent.
fn signal(pid: u32, name: &str) -> bool {
    Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn read_lines(
    stream: impl Read + Send + 'static,
    output: Arc<Output>,
    which: fn(&mut Lines) -> &mut Vec<String>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
            let mut lines = output.lines.lock().unwrap();
            if n == 0 {
                lines.open -= 1;
                output.changed.notify_all();
                return;
            }
            let text = String::from_utf8_lossy(&buf);
            which(&mut lines).push(text.trim_end_matches(['\n', '\r']).to_owned());
            output.changed.notify_all();
        }
    })
}

fn show(stdout: &[String], stderr: &[String]) -> String {
    let mut text = String::new();
    for line in stdout {
        text.push_str(&format!("  stdout| {line}\n"));
    }
    for line in stderr {
        text.push_str(&format!("  stderr| {line}\n"));
    }
    if text.is_empty() {
        text.push_str("  (nothing)\n");
    }
    text
}

impl Finished {
    /// Panics, showing the output, unless the peer exited with status 0.
    pub(crate) fn success(self) -> Finished {
        assert!(
            self.status.success(),
            "`{}` failed ({}); it printed:\n{self}",
            self.label,
            self.status
        );
        self
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(&self.stdout, &self.stderr))
    }
}

/// `mosquitto_sub -h 127.0.0.1 -p PORT ARGS`, running.
pub(crate) fn mosquitto_sub(broker: &Broker, args: &[&str]) -> Peer {
    let port = broker.port().to_string();
    let mut full = vec!["-h", HOST, "-p", &port];
    full.extend_from_slice(args);
    Peer::spawn_line_buffered(&tool("mosquitto_sub"), &full)
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT ARGS`, run to a successful exit.
pub(crate) fn mosquitto_pub(broker: &Broker, args: &[&str]) -> Finished {
    let port = broker.port().to_string();
    let mut full = vec!["-h", HOST, "-p", &port];
    full.extend_from_slice(args);
    Peer::spawn_line_buffered(&tool("mosquitto_pub"), &full)
        .wait()
        .success()
}

/// Whether a line is the one mosquitto_sub prints on SUBACK (with `-d`):
/// "Subscribed (mid: 1): 2".
pub(crate) fn is_subscribed(line: &str) -> bool {
    line.starts_with("Subscribed (mid: ")
}

/// The Mosquitto clients' debug lines name the client ("Client mosq-X1b
/// sending CONNECT"); ids are generated, so they differ from run to run and
/// between brokers (v5 brokers assign them). Each id is replaced by `<idN>`,
/// numbered in order of first appearance, so that the lines stay comparable
/// and still show when a client's id changes (at a v5 CONNACK).
pub(crate) fn mask_client_ids(lines: &[String]) -> Vec<String> {
    let mut ids: HashMap<String, usize> = HashMap::new();
    lines
        .iter()
        .map(|line| {
            match line
                .strip_prefix("Client ")
                .and_then(|rest| rest.split_once(' '))
            {
                Some((id, rest)) => {
                    let next = ids.len();
                    let n = *ids.entry(id.to_owned()).or_insert(next);
                    format!("Client <id{n}> {rest}")
                }
                None => line.clone(),
            }
        })
        .collect()
}

/// The lines without their "Client <id> " prefix, for comparing with a
/// transcript written down by hand.
pub(crate) fn without_client(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|line| {
            match line
                .strip_prefix("Client ")
                .and_then(|rest| rest.split_once(' '))
            {
                Some((_, rest)) => rest.to_owned(),
                None => line.clone(),
            }
        })
        .collect()
}

/// Panics, showing both, unless `actual` equals `expected` line for line.
pub(crate) fn assert_lines(what: &str, expected: &[String], actual: &[String]) {
    if expected == actual {
        return;
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(e, a)| e != a)
        .unwrap_or(expected.len().min(actual.len()));
    let mut text = format!("{what}: the lines differ from line {}\n", first + 1);
    text.push_str("expected:\n");
    for (i, line) in expected.iter().enumerate() {
        text.push_str(&format!(
            "  {:>2}{} {line}\n",
            i + 1,
            if i == first { '>' } else { '|' }
        ));
    }
    text.push_str("actual:\n");
    for (i, line) in actual.iter().enumerate() {
        text.push_str(&format!(
            "  {:>2}{} {line}\n",
            i + 1,
            if i == first { '>' } else { '|' }
        ));
    }
    panic!("{text}");
}

/// Owned lines from string literals.
pub(crate) fn lines(text: &[&str]) -> Vec<String> {
    text.iter().map(|line| (*line).to_owned()).collect()
}
