//! For the `starling pub` / `sub` / `rr` tests: brokers (`starling broker`
//! and Debian's `mosquitto`) configured by a file, and the tools (ours and
//! Mosquitto's) as child processes whose whole output is collected while they
//! run. Every child is killed when its handle is dropped.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::{free_port, fresh_dir, tool, Scratch, POLL, WAIT};

/// The `starling` binary under test.
pub(crate) const STARLING: &str = env!("CARGO_BIN_EXE_starling");

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Starling,
    Mosquitto,
}

/// A broker child process on a free port of 127.0.0.1, killed on drop.
pub(crate) struct Broker {
    pub(crate) port: u16,
    pub(crate) kind: Kind,
    child: Child,
    log: Output,
    _scratch: Scratch,
}

impl Broker {
    pub(crate) fn start(kind: Kind) -> Broker {
        match kind {
            Kind::Starling => Broker::starling(),
            Kind::Mosquitto => Broker::mosquitto(""),
        }
    }

    /// `starling broker -p PORT`.
    pub(crate) fn starling() -> Broker {
        let port = free_port();
        let scratch = Scratch::new("starling-broker");
        let mut command = Command::new(STARLING);
        command
            .args(["broker", "-p", &port.to_string()])
            .env("STARLING_DATA_DIR", fresh_dir(&scratch, "data"));
        Broker::spawn(Kind::Starling, port, command, scratch)
    }

    /// `starling broker -c FILE`: a listener on 127.0.0.1 with `extra` after it
    /// (its TLS files, ...), anonymous clients allowed.
    pub(crate) fn starling_with(extra: &str) -> Broker {
        let port = free_port();
        let scratch = Scratch::new("starling-broker");
        let conf = scratch.write(
            "mosquitto.conf",
            format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n"),
        );
        let mut command = Command::new(STARLING);
        command
            .arg("broker")
            .arg("-c")
            .arg(conf)
            .env("STARLING_DATA_DIR", fresh_dir(&scratch, "data"));
        Broker::spawn(Kind::Starling, port, command, scratch)
    }

    /// Debian's `mosquitto` with a listener on 127.0.0.1, anonymous clients
    /// allowed unless `extra` says otherwise, logging everything.
    pub(crate) fn mosquitto(extra: &str) -> Broker {
        let port = free_port();
        let scratch = Scratch::new("mosquitto");
        let anonymous = if extra.contains("allow_anonymous") {
            ""
        } else {
            "allow_anonymous true\n"
        };
        let conf = scratch.write(
            "mosquitto.conf",
            format!(
                "listener {port} 127.0.0.1\n{anonymous}log_type all\nlog_dest stderr\n{extra}\n"
            ),
        );
        let mut command = Command::new(tool("mosquitto"));
        command.arg("-c").arg(conf);
        Broker::spawn(Kind::Mosquitto, port, command, scratch)
    }

    fn spawn(kind: Kind, port: u16, mut command: Command, scratch: Scratch) -> Broker {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("cannot start the broker");
        let log = Output::collect(&mut child);
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{kind:?} broker exited ({status}): {}", log.all());
            }
            assert!(
                Instant::now() < deadline,
                "{kind:?} broker not listening on {port}"
            );
            thread::sleep(POLL);
        }
        Broker {
            port,
            kind,
            child,
            log,
            _scratch: scratch,
        }
    }

    /// What the broker logged so far (Mosquitto's `log_type all`).
    pub(crate) fn log(&self) -> String {
        self.log.all()
    }

    /// Waits until the broker's log contains `text`.
    pub(crate) fn wait_log(&self, text: &str) {
        self.log.wait_for(text, WAIT);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// stdout and stderr of a child, collected by reader threads.
#[derive(Clone)]
pub(crate) struct Output {
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Output {
    fn collect(child: &mut Child) -> Output {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(reader(pipe, Arc::clone(&stdout)));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(reader(pipe, Arc::clone(&stderr)));
        }
        Output {
            stdout,
            stderr,
            readers: Arc::new(Mutex::new(readers)),
        }
    }

    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    pub(crate) fn stdout_bytes(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    fn all(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }

    /// Waits until stdout or stderr contains `text`.
    pub(crate) fn wait_for(&self, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.all().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} within {timeout:?}; output so far:\n{}",
                self.all()
            );
            thread::sleep(POLL);
        }
    }

    fn join(&self) {
        for handle in self.readers.lock().unwrap().drain(..) {
            let _ = handle.join();
        }
    }
}

fn reader(mut pipe: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0; 8192];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// A finished command: its output and exit status.
#[derive(Debug, Clone)]
pub(crate) struct Done {
    pub(crate) stdout: String,
    pub(crate) stdout_bytes: Vec<u8>,
    pub(crate) stderr: String,
    /// The exit code; `None` if a signal ended it.
    pub(crate) code: Option<i32>,
}

/// A command to run: a tool with its arguments, environment and stdin.
pub(crate) struct Run {
    command: Command,
    stdin: Option<Vec<u8>>,
    label: String,
}

impl Run {
    /// `starling SUBCOMMAND ARGS...`.
    pub(crate) fn starling<S: AsRef<OsStr>>(
        subcommand: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Run {
        let mut command = Command::new(STARLING);
        command.arg(subcommand).args(args);
        Run::new(command, format!("starling {subcommand}"))
    }

    /// A Mosquitto tool (`mosquitto_pub`, ...) with `args`.
    pub(crate) fn mosquitto<S: AsRef<OsStr>>(name: &str, args: impl IntoIterator<Item = S>) -> Run {
        let mut command = Command::new(tool(name));
        command.args(args);
        Run::new(command, name.to_owned())
    }

    /// The same tool from either side: `starling pub` or `mosquitto_pub`.
    pub(crate) fn either<S: AsRef<OsStr>>(
        ours: bool,
        tool: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Run {
        if ours {
            Run::starling(tool, args)
        } else {
            Run::mosquitto(&format!("mosquitto_{tool}"), args)
        }
    }

    /// Any program (`openssl`, `python3`, ...) with `args`, named `label` in
    /// messages.
    pub(crate) fn program<S: AsRef<OsStr>>(
        label: &str,
        program: impl AsRef<OsStr>,
        args: impl IntoIterator<Item = S>,
    ) -> Run {
        let mut command = Command::new(program);
        command.args(args);
        Run::new(command, label.to_owned())
    }

    /// Mosquitto's tool with line-buffered stdout (coreutils' stdbuf), so that
    /// its output can be watched while it runs.
    pub(crate) fn mosquitto_line_buffered<S: AsRef<OsStr>>(
        name: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Run {
        let mut command = Command::new(tool("stdbuf"));
        command.arg("-oL").arg(tool(name)).args(args);
        Run::new(command, name.to_owned())
    }

    fn new(mut command: Command, label: String) -> Run {
        // Neither the user's defaults files nor locale settings take part.
        command
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("LC_ALL", "C");
        Run {
            command,
            stdin: None,
            label,
        }
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Run {
        self.command.env(key, value);
        self
    }

    pub(crate) fn env_remove(mut self, key: &str) -> Run {
        self.command.env_remove(key);
        self
    }

    pub(crate) fn stdin(mut self, input: impl Into<Vec<u8>>) -> Run {
        self.stdin = Some(input.into());
        self
    }

    /// Starts it in the background.
    pub(crate) fn spawn(mut self) -> Running {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self
            .command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.label));
        if let Some(input) = self.stdin.take() {
            let mut pipe = child.stdin.take().unwrap();
            thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let output = Output::collect(&mut child);
        Running {
            child,
            output,
            label: self.label,
        }
    }

    /// Runs it to completion (within [`WAIT`]).
    pub(crate) fn run(self) -> Done {
        self.spawn().wait()
    }
}

/// A tool running in the background; killed on drop.
pub(crate) struct Running {
    child: Child,
    pub(crate) output: Output,
    label: String,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it has exited (its status is then kept for [`Running::wait`]).
    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits until its output contains `text`.
    pub(crate) fn wait_for(&self, text: &str) {
        self.output.wait_for(text, WAIT);
    }

    /// Sends a signal (`INT`, `TERM`, `KILL`) with the shell's `kill`.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{name} {}", self.pid()))
            .status()
            .expect("sh -c kill");
        assert!(status.success(), "kill -{name} {}", self.pid());
    }

    /// Waits for it to exit (within [`WAIT`]).
    pub(crate) fn wait(mut self) -> Done {
        let deadline = Instant::now() + WAIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {WAIT:?}; output:\n{}\n{}",
                    self.label,
                    self.output.stdout(),
                    self.output.stderr()
                );
            }
            thread::sleep(POLL);
        };
        self.output.join();
        Done {
            stdout: self.output.stdout(),
            stdout_bytes: self.output.stdout_bytes(),
            stderr: self.output.stderr(),
            code: status.code(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces client identifiers the broker or libmosquitto made up
/// (`auto-UUID`, `mosq-...`) with `ID`.
pub(crate) fn mask_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("auto-").or_else(|| rest.find("mosq-")) {
        out.push_str(&rest[..at]);
        let id_end = rest[at..].find([' ', '\n']).map_or(rest.len(), |n| at + n);
        out.push_str("ID");
        rest = &rest[id_end..];
    }
    out.push_str(rest);
    out
}

/// `mosquitto_TOOL` in Mosquitto's messages, as `starling TOOL`.
pub(crate) fn as_starling(text: &str) -> String {
    text.replace("mosquitto_pub", "starling pub")
        .replace("mosquitto_sub", "starling sub")
        .replace("mosquitto_rr", "starling rr")
}
