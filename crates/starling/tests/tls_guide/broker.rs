//! Brokers (`starling broker`, Debian's `mosquitto`) started from a
//! configuration, directly or on a pseudo-terminal (tls_guide/answer.py)
//! that answers their pass phrase prompt; killed by process id.

use super::*;

/// How to start a broker: its configuration (global lines, then one
/// `listener PORT 127.0.0.1` block per listener), environment, and whether
/// it runs on a terminal where its pass phrase prompt is answered.
pub(crate) struct Launch {
    kind: Kind,
    global: String,
    listeners: Vec<String>,
    env: Vec<(String, OsString)>,
    terminal: Option<String>,
}

impl Launch {
    pub(crate) fn new(kind: Kind, global: &str) -> Launch {
        Launch {
            kind,
            global: global.to_owned(),
            listeners: Vec::new(),
            env: Vec::new(),
            terminal: None,
        }
    }

    pub(crate) fn listener(mut self, body: &str) -> Launch {
        self.listeners.push(body.to_owned());
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl Into<OsString>) -> Launch {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// On a pseudo-terminal, answering OpenSSL's prompt with `answer` (an
    /// empty answer never answers).
    pub(crate) fn on_terminal(mut self, answer: &str) -> Launch {
        self.terminal = Some(answer.to_owned());
        self
    }

    pub(crate) fn spawn(self, scratch: &Scratch) -> (Running, Vec<u16>, bool) {
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
    pub(crate) fn start(self, pairing: Pairing) -> TlsBroker {
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
    pub(crate) fn fails(self, pairing: Pairing) -> Ended {
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
pub(crate) struct TlsBroker {
    kind: Kind,
    pub(crate) ports: Vec<u16>,
    running: Running,
    /// The broker's own process id: on a terminal, `running` is the helper
    /// that holds the terminal.
    pid: u32,
    on_terminal: bool,
    _scratch: Scratch,
}

impl TlsBroker {
    pub(crate) fn port(&self) -> u16 {
        self.ports[0]
    }

    pub(crate) fn output(&self) -> String {
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
    pub(crate) fn wait_listening(&self, pairing: Pairing) {
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
    pub(crate) fn exited(&self) -> bool {
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
    pub(crate) fn hang_up(&self) {
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
pub(crate) fn kill_child(pid: u32, helper: u32) {
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

/// The Python interpreter, once it is known to import paho-mqtt 2.x; panics
/// otherwise (the test fails, naming scripts/test).
pub(crate) fn python() -> PathBuf {
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
pub(crate) fn on_terminal_run(
    label: &str,
    answer: &str,
    program: impl Into<OsString>,
    args: impl IntoIterator<Item = impl Into<OsString>>,
) -> Run {
    let script = format!("{}/tests/tls_guide/answer.py", env!("CARGO_MANIFEST_DIR"));
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
pub(crate) fn terminal_pid(running: &mut Running, pairing: Pairing) -> u32 {
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
