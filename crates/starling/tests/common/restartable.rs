//! `starling broker` as a process that a test stops (SIGTERM) or kills
//! (SIGKILL) and starts again on the same port, configuration and store
//! directory: what the durability tests need. Every run's log is kept and
//! printed when the test fails.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::raw::{Login, Raw};
use super::{free_port, read_log, Scratch, POLL, WAIT};

/// How a running broker is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// SIGTERM: the broker shuts down as it chooses, and must exit with 0.
    Graceful,
    /// SIGKILL: the broker gets no chance to do anything (a crash).
    Kill,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::Graceful => "SIGTERM",
            Stop::Kill => "SIGKILL",
        })
    }
}

/// Writes the configuration for a port and a store directory.
type Conf = Box<dyn Fn(u16, &Path) -> String + Send>;

/// A `starling broker -c FILE` that can be stopped and started again; killed
/// on drop.
pub(crate) struct Starling {
    scratch: Scratch,
    port: u16,
    data: PathBuf,
    conf: Conf,
    args: Vec<OsString>,
    child: Option<Child>,
    logs: Vec<PathBuf>,
}

impl Starling {
    /// A broker (not started) whose configuration is a listener on
    /// 127.0.0.1, anonymous access, persistence in its own store directory,
    /// then the lines of `extra`.
    pub(crate) fn new(label: &str, extra: &str) -> Starling {
        let extra = extra.to_owned();
        Starling::with_conf(label, move |port, data| {
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                 persistence_location {}\n{extra}\n",
                data.display()
            )
        })
    }

    /// A broker (not started) configured by `conf(port, store directory)`.
    pub(crate) fn with_conf(
        label: &str,
        conf: impl Fn(u16, &Path) -> String + Send + 'static,
    ) -> Starling {
        let scratch = Scratch::new(label);
        let data = scratch.path("data");
        fs::create_dir_all(&data).expect("create the store directory");
        Starling {
            scratch,
            port: free_port(),
            data,
            conf: Box::new(conf),
            args: Vec::new(),
            child: None,
            logs: Vec::new(),
        }
    }

    /// Uses `dir` as the store directory given to the configuration.
    pub(crate) fn data_dir_at(mut self, dir: PathBuf) -> Starling {
        self.data = dir;
        self
    }

    /// Adds command-line arguments after `broker -c FILE`.
    pub(crate) fn args<S: Into<OsString>>(mut self, args: impl IntoIterator<Item = S>) -> Starling {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds command-line arguments to the next runs.
    pub(crate) fn add_args<S: Into<OsString>>(&mut self, args: impl IntoIterator<Item = S>) {
        self.args.extend(args.into_iter().map(Into::into));
    }

    /// Waits until the log of the current run contains `text`.
    pub(crate) fn wait_log(&self, text: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.current_log().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the broker's log within {WAIT:?}; its log:\n{}",
                self.current_log()
            );
            thread::sleep(POLL);
        }
    }

    /// The directory `STARLING_DATA_DIR` names for the broker: where its
    /// store goes when neither the configuration nor the command line names
    /// one.
    pub(crate) fn default_data_dir(&self) -> PathBuf {
        self.scratch.path("default-data")
    }

    /// Starts it and returns it once it accepts connections.
    pub(crate) fn started(mut self) -> Starling {
        self.start();
        self
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The store directory the configuration names.
    pub(crate) fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The store file the configuration implies.
    pub(crate) fn store_file(&self) -> PathBuf {
        self.data.join("starling.db")
    }

    pub(crate) fn scratch(&self) -> &Scratch {
        &self.scratch
    }

    /// The process id of the running broker.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is running").id()
    }

    /// Starts the broker and waits until it answers a CONNECT (a broker
    /// restores its store before it serves clients). On the first start only, a
    /// port taken in the meantime is replaced by another.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let first = self.logs.is_empty();
        let mut failures = Vec::new();
        for _ in 0..if first { 3 } else { 1 } {
            let mut child = self.spawn();
            match self.wait_until_listening(&mut child) {
                Ok(()) => {
                    self.child = Some(child);
                    return;
                }
                Err(failure) => {
                    failures.push(failure);
                    if first {
                        self.port = free_port();
                    }
                }
            }
        }
        panic!("starling did not start:\n{}", failures.join("\n"));
    }

    /// Runs the broker as [`Starling::start`] would, but expects it to exit
    /// by itself within [`WAIT`]: its exit status and everything it printed.
    pub(crate) fn run_to_exit(&mut self) -> (ExitStatus, String) {
        assert!(self.child.is_none(), "the broker is already running");
        let mut child = self.spawn();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return (status, self.current_log());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "starling did not exit within {WAIT:?}; its log:\n{}",
                    self.current_log()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Ends the running broker `how`; a graceful stop must end with status 0.
    pub(crate) fn stop(&mut self, how: Stop) {
        let mut child = self.child.take().expect("the broker is running");
        match how {
            Stop::Kill => {
                child.kill().expect("SIGKILL the broker");
                child.wait().expect("reap the broker");
            }
            Stop::Graceful => {
                let sent = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .is_ok_and(|status| status.success());
                assert!(sent, "cannot send SIGTERM to the broker");
                let deadline = Instant::now() + WAIT;
                let status = loop {
                    if let Some(status) = child.try_wait().expect("try_wait") {
                        break status;
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "starling did not stop within {WAIT:?} of SIGTERM; its log:\n{}",
                            self.current_log()
                        );
                    }
                    thread::sleep(POLL);
                };
                assert!(
                    status.success(),
                    "starling exited with {status} on SIGTERM; its log:\n{}",
                    self.current_log()
                );
            }
        }
    }

    /// Ends the broker `how` and starts it again on the same port, store
    /// and configuration.
    pub(crate) fn restart(&mut self, how: Stop) {
        self.stop(how);
        self.start();
    }

    /// The log of the latest run.
    pub(crate) fn current_log(&self) -> String {
        self.logs
            .last()
            .map_or_else(String::new, |log| read_log(log))
    }

    /// The logs of every run, in order.
    pub(crate) fn all_logs(&self) -> String {
        let mut text = String::new();
        for (n, log) in self.logs.iter().enumerate() {
            text.push_str(&format!("--- run {} ---\n{}", n + 1, read_log(log)));
        }
        text
    }

    fn spawn(&mut self) -> Child {
        let run = self.logs.len() + 1;
        let conf = self.scratch.write(
            &format!("starling-{run}.conf"),
            (self.conf)(self.port, &self.data),
        );
        let log = self.scratch.path(&format!("broker-{run}.log"));
        let out = File::create(&log).expect("create the broker log");
        let err = out.try_clone().expect("clone the broker log");
        self.logs.push(log);
        // A store directory of its own even where the configuration names
        // none, so that no test touches the user's default store.
        let fallback = self.default_data_dir();
        fs::create_dir_all(&fallback).expect("create the default store directory");
        Command::new(env!("CARGO_BIN_EXE_starling"))
            .arg("broker")
            .arg("-c")
            .arg(&conf)
            .args(&self.args)
            .env("STARLING_DATA_DIR", &fallback)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start starling")
    }

    fn wait_until_listening(&self, child: &mut Child) -> Result<(), String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return Err(format!(
                    "starling exited ({status}) before listening on {addr}; its log:\n{}",
                    self.current_log()
                ));
            }
            // The socket may accept connections before the broker has
            // restored its store (the kernel queues them): ready is when an
            // MQTT CONNECT gets its CONNACK.
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                if let Ok((probe, _)) = Raw::try_connect(self.port, Login::v311("ready-probe")) {
                    probe.disconnect();
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "starling did not accept connections on {addr} within {WAIT:?}; its log:\n{}",
                    self.current_log()
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for Starling {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- starling logs (port {}) ---\n{}",
                self.port,
                self.all_logs()
            );
        }
    }
}
