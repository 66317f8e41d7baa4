//! The broker as a process and its log, each directive beside Debian's
//! Mosquitto 2.0 run with the same configuration file (mosquitto.conf(5)):
//! - `pid_file`: holds the pid while the broker runs, removed at exit; one
//!   that cannot be written stops the start;
//! - `user`: started as root (as these tests are), the broker runs as that
//!   user and its group (`mosquitto` by default, `root` stays root, a user
//!   that does not exist stops the start), read in /proc/PID/status;
//! - `log_timestamp`, `log_timestamp_format`, `connection_messages`, also
//!   reloaded on SIGHUP;
//! - `log_facility` and `websockets_log_level`, which Starling accepts with
//!   one warning line each saying why they change nothing.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, fresh_dir, tool, BrokerKind, Scratch, WAIT};

const BOTH: [BrokerKind; 2] = [BrokerKind::Starling, BrokerKind::Mosquitto];

/// A broker started with `-c FILE` (no `-v`: the log is what the file
/// says), its stdout and stderr in one file; killed on drop.
struct Running {
    kind: BrokerKind,
    child: Child,
    log: PathBuf,
}

impl Running {
    /// Starts `kind` on `conf` (written to `dir`); does not wait.
    fn spawn(kind: BrokerKind, dir: &Scratch, conf: &str) -> Running {
        let name = format!("{kind}");
        let file = dir.write(&format!("{name}.conf"), conf);
        let log = dir.path(&format!("{name}.log"));
        let out = fs::File::create(&log).expect("create the log");
        let mut command = match kind {
            BrokerKind::Starling => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_starling"));
                command
                    .arg("broker")
                    .env("STARLING_DATA_DIR", fresh_dir(dir, "data"));
                command
            }
            BrokerKind::Mosquitto => Command::new(tool("mosquitto")),
        };
        let child = command
            .arg("-c")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
        Running { kind, child, log }
    }

    /// Starts `kind` and waits until `port` accepts connections.
    fn start(kind: BrokerKind, dir: &Scratch, conf: &str, port: u16) -> Running {
        let mut running = Running::spawn(kind, dir, conf);
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("{kind} exited ({status}):\n{}", running.log());
            }
            assert!(
                Instant::now() < deadline,
                "{kind} not listening:\n{}",
                running.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
        // A client served: the broker's main loop runs, its signals are
        // caught (Mosquitto catches them only after it listens).
        client(port, "ready");
        running
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The exit status of a broker that stops by itself.
    fn exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.kind,
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.exit()
    }

    /// Waits until the log holds `what`.
    fn wait_for_log(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "{} never logged {what:?}:\n{}",
                self.kind,
                self.log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `Uid:` and `Gid:` of /proc/PID/status (real, effective, saved, fs),
    /// the same in every thread of the process (checked).
    fn ids(&self) -> (String, String) {
        let ids_of = |status: &str| {
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            (field("Uid:"), field("Gid:"))
        };
        let process = ids_of(&fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap());
        for task in fs::read_dir(format!("/proc/{}/task", self.pid())).unwrap() {
            let status = fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            assert_eq!(ids_of(&status), process, "{}: a thread's ids", self.kind);
        }
        process
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.kind, self.log());
        }
    }
}

/// Whether this test process is root (the brokers it starts are too).
fn root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap()
}

/// A listener on `port` for anonymous clients.
fn listener(port: u16) -> String {
    format!("listener {port} 127.0.0.1\nallow_anonymous true\n")
}

/// One client connects, publishes and disconnects.
fn one_client(port: u16) {
    client(port, "one-client");
}

/// A client `id` connects, publishes and disconnects.
fn client(port: u16, id: &str) {
    let out = Command::new(tool("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-i", id, "-t", "t", "-m", "m"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

/// A directory the brokers, running as `mosquitto` after the drop, may write.
fn writable_by_mosquitto(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    if root() {
        let uid = fs::read_to_string("/etc/passwd")
            .unwrap()
            .lines()
            .find_map(|l| {
                let fields: Vec<&str> = l.split(':').collect();
                (fields[0] == "mosquitto").then(|| fields[2].parse::<u32>().unwrap())
            })
            .expect("the mosquitto user (Debian's mosquitto package makes it)");
        std::os::unix::fs::chown(dir, Some(uid), None).unwrap();
    }
}

#[test]
fn pid_file_holds_the_pid_and_is_removed_on_exit() {
    for kind in BOTH {
        let scratch = Scratch::new("pid-file");
        let run = scratch.path("run");
        writable_by_mosquitto(&run);
        let pid_file = run.join("broker.pid");
        let port = free_port();
        let conf = format!("{}pid_file {}\n", listener(port), pid_file.display());
        let mut broker = Running::start(kind, &scratch, &conf, port);
        let deadline = Instant::now() + WAIT;
        while !pid_file.exists() {
            assert!(Instant::now() < deadline, "{kind}: no pid file");
            thread::sleep(Duration::from_millis(10));
        }
        // Mosquitto's form: the number, no newline.
        assert_eq!(
            fs::read_to_string(&pid_file).unwrap(),
            broker.pid().to_string(),
            "{kind}"
        );
        assert!(broker.stop().success(), "{kind}");
        assert!(!pid_file.exists(), "{kind}: the pid file is left behind");
    }
}

#[test]
fn a_pid_file_that_cannot_be_written_stops_the_start() {
    for kind in BOTH {
        let scratch = Scratch::new("pid-file-bad");
        let missing = scratch.path("no-such-dir/broker.pid");
        // Root's directory: the broker, no longer root when it writes the
        // pid file, may not write there (as Mosquitto, which writes it as
        // `mosquitto` too).
        let roots = scratch.path("roots");
        fs::create_dir_all(&roots).unwrap();
        let roots = roots.join("broker.pid");
        let mut cases = vec![(missing, "No such file or directory")];
        if root() {
            cases.push((roots, "Permission denied"));
        }
        for (pid_file, reason) in cases {
            let port = free_port();
            let conf = format!("{}pid_file {}\n", listener(port), pid_file.display());
            let mut broker = Running::spawn(kind, &scratch, &conf);
            let status = broker.exit();
            assert_eq!(status.code(), Some(1), "{kind}: {}", broker.log());
            assert!(!pid_file.exists());
            let log = broker.log();
            match kind {
                BrokerKind::Starling => {
                    let expected = format!("cannot write the pid file {}", pid_file.display());
                    assert!(log.contains(&expected), "{log}");
                    assert!(log.contains(reason), "{log}");
                }
                BrokerKind::Mosquitto => {
                    assert!(log.contains("Error: Unable to write pid file."), "{log}")
                }
            }
        }
    }
}

#[test]
fn user_runs_the_broker_as_that_user_and_its_group() {
    for user in [None, Some("nobody"), Some("root")] {
        let mut seen = Vec::new();
        for kind in BOTH {
            let scratch = Scratch::new("user");
            let port = free_port();
            let line = user.map_or(String::new(), |u| format!("user {u}\n"));
            let conf = format!("{}{line}", listener(port));
            let broker = Running::start(kind, &scratch, &conf, port);
            // The drop comes after the bind: a client served is after it.
            one_client(port);
            seen.push(broker.ids());
            if root() && user == Some("root") {
                let log = broker.log();
                assert!(log.contains("should not be run as root"), "{kind}:\n{log}");
            }
        }
        if !root() {
            // Not started as root: `user` has no effect, in both.
            assert_eq!(seen[0], seen[1], "user {user:?}");
            continue;
        }
        assert_eq!(seen[0], seen[1], "user {user:?}: Starling, Mosquitto");
        let (uid, gid) = match user {
            None | Some("mosquitto") => {
                let passwd = fs::read_to_string("/etc/passwd").unwrap();
                let fields: Vec<String> = passwd
                    .lines()
                    .find(|l| l.starts_with("mosquitto:"))
                    .expect("the mosquitto user")
                    .split(':')
                    .map(str::to_string)
                    .collect();
                (fields[2].clone(), fields[3].clone())
            }
            Some("nobody") => ("65534".to_string(), "65534".to_string()),
            _ => ("0".to_string(), "0".to_string()),
        };
        let all = |id: &str| [id; 4].join(" ");
        assert_eq!(seen[0], (all(&uid), all(&gid)), "user {user:?}");
    }
}

#[test]
fn a_user_that_does_not_exist_stops_the_start() {
    if !root() {
        return; // `user` has no effect unless started as root.
    }
    for kind in BOTH {
        let scratch = Scratch::new("user-missing");
        let port = free_port();
        let conf = format!("{}user no-such-user-starling\n", listener(port));
        let mut broker = Running::spawn(kind, &scratch, &conf);
        assert_eq!(broker.exit().code(), Some(1), "{kind}");
        let expected = "Unable to drop privileges to 'no-such-user-starling' because this user \
                        does not exist";
        assert!(broker.log().contains(expected), "{kind}:\n{}", broker.log());
    }
}

/// Started as root, the broker reads its files before it drops to
/// `mosquitto`; a reload reads them as `mosquitto`. One only root may read
/// is refused then, and the log says why (the file in force stays).
/// Mosquitto, which reads it after the drop, does not even start.
#[test]
fn files_only_root_reads_are_not_reloaded_after_the_drop() {
    if !root() {
        return;
    }
    for kind in BOTH {
        let scratch = Scratch::new("root-only");
        let acl = scratch.write("acl", "topic readwrite #\n");
        fs::set_permissions(&acl, fs::Permissions::from_mode(0o600)).unwrap();
        let port = free_port();
        let conf = format!("{}acl_file {}\n", listener(port), acl.display());
        match kind {
            BrokerKind::Starling => {
                let broker = Running::start(kind, &scratch, &conf, port);
                one_client(port);
                // Said at the start already.
                let warning = format!(
                    "Warning: user 'mosquitto' cannot read {} (Permission denied (os error 13)): \
                     a reload (SIGHUP) will keep what was read at the start.",
                    acl.display()
                );
                assert!(broker.log().contains(&warning), "{}", broker.log());
                broker.signal("HUP");
                broker.wait_for_log("reload failed");
                assert!(
                    broker.log().contains("Permission denied"),
                    "{}",
                    broker.log()
                );
                one_client(port);
            }
            BrokerKind::Mosquitto => {
                let mut broker = Running::spawn(kind, &scratch, &conf);
                assert!(!broker.exit().success(), "{}", broker.log());
            }
        }
    }
}

/// `SECS: ` at the start of a line, as Mosquitto's default timestamp.
fn has_unix_timestamp(line: &str) -> bool {
    line.split_once(": ")
        .is_some_and(|(secs, _)| !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn log_timestamp_false_lines_are_the_message_alone() {
    for kind in BOTH {
        let scratch = Scratch::new("no-timestamp");
        let port = free_port();
        let conf = format!("{}log_timestamp false\n", listener(port));
        let mut broker = Running::start(kind, &scratch, &conf, port);
        one_client(port);
        broker.stop();
        let log = broker.log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            lines[0].starts_with(&format!("{kind} version ")),
            "{kind}:\n{log}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("New client connected from 127.0.0.1:")),
            "{kind}:\n{log}"
        );
        assert!(
            !lines.iter().any(|l| has_unix_timestamp(l)),
            "{kind}:\n{log}"
        );
    }
}

#[test]
fn log_timestamp_format_is_strftime() {
    for kind in BOTH {
        let scratch = Scratch::new("timestamp-format");
        let port = free_port();
        let conf = format!("{}log_timestamp_format %Y-%m-%dT%H:%M:%S\n", listener(port));
        let mut broker = Running::start(kind, &scratch, &conf, port);
        broker.stop();
        let log = broker.log();
        let first = log.lines().next().unwrap_or_default();
        // 2026-12-08T01:09:08: mosquitto version 2.0.11 starting
        let (stamp, rest) = first.split_once(": ").expect("a timestamp");
        let shape: String = stamp
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99T99:99:99", "{kind}: {first}");
        assert!(
            rest.starts_with(&format!("{kind} version ")),
            "{kind}: {first}"
        );
    }
}

#[test]
fn connection_messages_false_leaves_out_connection_lines() {
    for kind in BOTH {
        let scratch = Scratch::new("no-connection-messages");
        let port = free_port();
        let conf = format!("{}connection_messages false\n", listener(port));
        let mut broker = Running::start(kind, &scratch, &conf, port);
        one_client(port);
        broker.stop();
        let log = broker.log();
        assert!(log.contains(&format!("{kind} version ")), "{kind}:\n{log}");
        for line in ["New client connected", "one-client", "disconnected"] {
            assert!(!log.contains(line), "{kind}: {line:?} in:\n{log}");
        }
    }
}

/// Both are reloaded on SIGHUP, in Mosquitto as in Starling.
#[test]
fn connection_messages_and_log_timestamp_are_reloaded_on_sighup() {
    for kind in BOTH {
        let scratch = Scratch::new("reload-log");
        let port = free_port();
        let mut broker = Running::start(kind, &scratch, &listener(port), port);
        one_client(port);
        broker.wait_for_log("New client connected");
        scratch.write(
            &format!("{kind}.conf"),
            format!(
                "{}connection_messages false\nlog_timestamp false\n",
                listener(port)
            ),
        );
        broker.signal("HUP");
        broker.wait_for_log("Reloading config");
        // Mosquitto applies a reload on its next loop turn: let it run one.
        thread::sleep(Duration::from_millis(200));
        one_client(port);
        broker.stop();
        let log = broker.log();
        let after = log.split("Reloading config").nth(1).unwrap();
        assert!(!after.contains("New client connected"), "{kind}:\n{log}");
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.starts_with(&format!("{kind} version ")),
            "{kind}: {last:?} in:\n{log}"
        );
        if kind == BrokerKind::Starling {
            assert!(!log.contains("next start"), "{log}");
        }
    }
}

#[test]
fn log_facility_and_websockets_log_level_say_why_they_change_nothing() {
    let scratch = Scratch::new("explained");
    let port = free_port();
    let conf = format!(
        "{}log_facility 5\nwebsockets_log_level 255\n",
        listener(port)
    );
    let broker = Running::start(BrokerKind::Starling, &scratch, &conf, port);
    let log = broker.log();
    let warnings: Vec<&str> = log.lines().filter(|l| l.starts_with("Warning:")).collect();
    assert_eq!(warnings.len(), 2, "{log}");
    assert!(
        warnings[0].ends_with(
            ":3: log_facility: Starling does not log to syslog (log_dest syslog is not \
             supported yet), so there is no syslog facility to choose; ignored"
        ),
        "{log}"
    );
    assert!(
        warnings[1].contains(":4: websockets_log_level: sets the log mask of libwebsockets"),
        "{log}"
    );
    drop(broker);
    // Mosquitto takes both, and runs.
    let port = free_port();
    let conf = format!(
        "{}log_facility 5\nwebsockets_log_level 255\n",
        listener(port)
    );
    Running::start(BrokerKind::Mosquitto, &scratch, &conf, port);
}

/// The same settings in starling.toml do the same.
#[test]
fn the_toml_keys_do_the_same() {
    let scratch = Scratch::new("toml-process");
    let run = scratch.path("run");
    writable_by_mosquitto(&run);
    let pid_file = run.join("starling.pid");
    let port = free_port();
    let toml = format!(
        "allow_anonymous = true\nuser = \"mosquitto\"\npid_file = \"{}\"\n\
         connection_messages = false\n\
         [[listener]]\nport = {port}\naddress = \"127.0.0.1\"\n\
         [log]\ntimestamp = false\n",
        pid_file.display()
    );
    let file = scratch.write("starling.toml", &toml);
    let log = scratch.path("starling.log");
    let out = fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_starling"))
        .arg("broker")
        .arg("-c")
        .arg(&file)
        .env("STARLING_DATA_DIR", fresh_dir(&scratch, "data"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut broker = Running {
        kind: BrokerKind::Starling,
        child,
        log,
    };
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            broker.child.try_wait().unwrap().is_none(),
            "{}",
            broker.log()
        );
        assert!(Instant::now() < deadline, "{}", broker.log());
        thread::sleep(Duration::from_millis(10));
    }
    one_client(port);
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap(),
        broker.pid().to_string()
    );
    if root() {
        let mosquitto = fs::metadata(&run).unwrap();
        use std::os::unix::fs::MetadataExt;
        let (uid, _) = broker.ids();
        let mosquitto = mosquitto.uid().to_string();
        assert_eq!(uid, [mosquitto.as_str(); 4].join(" "));
    }
    assert!(broker.stop().success());
    assert!(!pid_file.exists());
    let log = broker.log();
    assert!(log.starts_with("starling version "), "{log}");
    assert!(!log.contains("New client connected"), "{log}");
}

/// `pid_file` and `user` are not reloaded (mosquitto.conf(5)): a reload
/// that changes them says they take effect at the next start, and the pid
/// file stays where it was.
#[test]
fn pid_file_and_user_are_not_reloaded() {
    let scratch = Scratch::new("not-reloaded");
    let run = scratch.path("run");
    writable_by_mosquitto(&run);
    let (first, second) = (run.join("first.pid"), run.join("second.pid"));
    let port = free_port();
    let conf = |pid: &Path, user: &str| {
        format!(
            "{}pid_file {}\nuser {user}\n",
            listener(port),
            pid.display()
        )
    };
    let mut broker = Running::start(
        BrokerKind::Starling,
        &scratch,
        &conf(&first, "mosquitto"),
        port,
    );
    one_client(port);
    let ids = broker.ids();
    scratch.write("starling.conf", conf(&second, "nobody"));
    broker.signal("HUP");
    broker.wait_for_log("take effect at the next start");
    assert!(first.exists() && !second.exists());
    assert_eq!(broker.ids(), ids);
    assert!(broker.stop().success());
    assert!(!first.exists());
}
