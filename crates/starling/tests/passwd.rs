//! `starling passwd` against Debian's mosquitto 2.0.11: the files it writes
//! are accepted by the `mosquitto` broker, it reads and keeps what
//! `mosquitto_passwd` wrote, and it answers every command line with the same
//! messages, prompts and exit codes. Also the broker binary's SIGHUP reload of
//! a password file (mosquitto.conf(5) password_file: "Reloaded on reload
//! signal").
//!
//! A missing mosquitto, mosquitto_passwd or mosquitto_pub fails the test:
//! scripts/test installs them.

mod common;

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{free_port, fresh_dir, tool, Scratch, WAIT};
use starling_broker::auth::password::PasswordFile;

const STARLING: &str = env!("CARGO_BIN_EXE_starling");

/// `starling passwd ARGS` with `stdin` piped in.
fn starling_passwd(args: &[&str], stdin: &str) -> Output {
    let mut full = vec!["passwd"];
    full.extend_from_slice(args);
    run(Path::new(STARLING), &full, stdin)
}

/// Debian's `mosquitto_passwd ARGS` with `stdin` piped in.
fn mosquitto_passwd(args: &[&str], stdin: &str) -> Output {
    run(&tool("mosquitto_passwd"), args, stdin)
}

fn run(program: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(what: &str, out: Output) -> Output {
    assert!(out.status.success(), "{what}: {out:?}");
    out
}

/// Whether `user` may log in with `password` according to `file`.
fn verifies(file: &Path, user: &str, password: &str) -> bool {
    let (passwords, problems) = PasswordFile::parse(&fs::read_to_string(file).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    passwords.check(user, Some(password.as_bytes()))
}

/// A broker child process with a configuration file, listening on `port`;
/// killed on drop.
struct BrokerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl BrokerProcess {
    /// Starts `mosquitto -c CONF` or `starling broker -c CONF`, where `conf`
    /// gets `listener PORT 127.0.0.1` prepended; returns once it listens.
    fn start(starling: bool, scratch: &Scratch, conf: &str) -> BrokerProcess {
        let port = free_port();
        let path = scratch.path(&format!("broker-{port}.conf"));
        fs::write(&path, format!("listener {port} 127.0.0.1\n{conf}")).unwrap();
        let log = scratch.path(&format!("broker-{port}.log"));
        let out = fs::File::create(&log).unwrap();
        let mut command = if starling {
            let mut c = Command::new(STARLING);
            c.arg("broker").env(
                "STARLING_DATA_DIR",
                fresh_dir(scratch, &format!("data-{port}")),
            );
            c
        } else {
            Command::new(tool("mosquitto"))
        };
        let child = command
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the broker");
        let mut broker = BrokerProcess { child, port, log };
        let deadline = Instant::now() + WAIT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if let Some(status) = broker.child.try_wait().unwrap() {
                panic!("the broker exited ({status}):\n{}", broker.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the broker does not listen:\n{}",
                broker.log_text()
            );
            thread::sleep(Duration::from_millis(10));
        }
        broker
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `mosquitto_pub` as `user`: its exit code, which is the CONNACK return
    /// code on a refusal (mosquitto_pub(1), EXIT STATUS).
    fn publish_as(&self, user: &str, password: &str) -> i32 {
        let out = Command::new(tool("mosquitto_pub"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-V",
                "mqttv311",
            ])
            .args(["-u", user, "-P", password, "-t", "t", "-m", "m"])
            .output()
            .expect("run mosquitto_pub");
        out.status.code().expect("exit code")
    }

    fn hang_up(&self) {
        let status = Command::new(tool("kill"))
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- broker log ---\n{}", self.log_text());
        }
    }
}

#[test]
fn files_written_by_starling_passwd_are_accepted_by_debian_mosquitto() {
    // mosquitto_passwd(1): "-H ... Defaults to sha512-pbkdf2"; what 2.0.11
    // writes by default is $7$ with 101 iterations and a 12-byte salt, and so
    // does `starling passwd`.
    let scratch = Scratch::new("passwd-to-mosquitto");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap();
    succeeded(
        "-c -b",
        starling_passwd(&["-c", "-b", f, "alice", "s3cret"], ""),
    );
    succeeded(
        "-H sha512",
        starling_passwd(&["-H", "sha512", "-b", f, "bob", "hunter2"], ""),
    );
    succeeded(
        "-I 1000",
        starling_passwd(&["-I", "1000", "-b", f, "carol", "many rounds"], ""),
    );
    let written = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 3, "{written}");
    let alice: Vec<&str> = lines[0].split('$').collect();
    assert_eq!(alice[..3], ["alice:", "7", "101"], "{written}");
    assert_eq!(alice[3].len(), 16, "a 12-byte salt in base64: {written}");
    assert!(lines[1].starts_with("bob:$6$"), "{written}");
    assert!(lines[2].starts_with("carol:$7$1000$"), "{written}");

    let mosquitto = BrokerProcess::start(
        false,
        &scratch,
        &format!("password_file {f}\nallow_anonymous false\n"),
    );
    assert_eq!(
        mosquitto.publish_as("alice", "s3cret"),
        0,
        "{}",
        mosquitto.log_text()
    );
    assert_eq!(mosquitto.publish_as("bob", "hunter2"), 0);
    assert_eq!(mosquitto.publish_as("carol", "many rounds"), 0);
    assert_eq!(
        mosquitto.publish_as("alice", "wrong"),
        5,
        "CONNACK 5, not authorised"
    );
    assert_eq!(mosquitto.publish_as("nobody", "s3cret"), 5);
}

#[test]
fn files_written_by_mosquitto_passwd_are_read_and_kept() {
    let scratch = Scratch::new("mosquitto-to-passwd");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap();
    succeeded(
        "mosquitto_passwd -c",
        mosquitto_passwd(&["-c", "-b", f, "alice", "one"], ""),
    );
    succeeded(
        "mosquitto_passwd -H sha512",
        mosquitto_passwd(&["-H", "sha512", "-b", f, "bob", "two"], ""),
    );
    let before = fs::read_to_string(&file).unwrap();
    succeeded(
        "starling passwd -b",
        starling_passwd(&["-b", f, "carol", "three"], ""),
    );
    let after = fs::read_to_string(&file).unwrap();
    assert!(
        after.starts_with(&before),
        "the other lines are kept byte for byte"
    );
    assert!(verifies(&file, "alice", "one") && verifies(&file, "bob", "two"));
    assert!(verifies(&file, "carol", "three"));
    // And mosquitto_passwd reads what starling passwd wrote.
    succeeded(
        "mosquitto_passwd -D",
        mosquitto_passwd(&["-D", f, "carol"], ""),
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), before);
    succeeded(
        "starling passwd -D",
        starling_passwd(&["-D", f, "alice"], ""),
    );
    let left = fs::read_to_string(&file).unwrap();
    assert!(
        left.starts_with("bob:$6$") && left.lines().count() == 1,
        "{left}"
    );
}

#[test]
fn messages_and_exit_codes_are_those_of_mosquitto_passwd() {
    // Each command line runs through both tools, on identical files: same
    // standard error, same exit code.
    let scratch = Scratch::new("passwd-messages");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap().to_string();
    let missing = scratch.path("missing").to_str().unwrap().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["-H"],
        vec!["-H", "md5", &f, "u"],
        vec!["-I"],
        vec!["-I", "0", &f, "u"],
        vec!["-I", "many", &f, "u"],
        vec!["-c", "-D", &f, "u"],
        vec!["-c", "-U", &f],
        vec!["-D", "-U", &f],
        vec!["-D", "-b", &f, "u"],
        vec!["-c", "-b", &f, "u"],
        vec!["-c", &f],
        vec!["-D", &f],
        vec!["-U"],
        vec!["-U", &f, "extra"],
        vec!["-b", &f, "a:b", "pw"],
        vec!["-b", &f, "tab\tname", "pw"],
        vec!["-D", &missing, "u"],
        vec!["-b", &missing, "u", "pw"],
        vec!["-D", &f, "nobody"],
        vec![],
        vec![&f],
        vec!["-b", &f, "u"],
    ];
    let seed = "alice:$7$101$AzAjPrGli8HaQveW$o10+M607SS0U5zMkp6yxLjtcrxY4LWUMRWNPmjvzExPa+5RrLBiRoEQIUJxeiR5O3nF9LNL/EWMkT7tm0N6Azw==\n";
    for args in cases {
        fs::write(&file, seed).unwrap();
        let theirs = mosquitto_passwd(&args, "");
        let their_file = fs::read_to_string(&file).unwrap();
        fs::write(&file, seed).unwrap();
        let ours = starling_passwd(&args, "");
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{args:?}: {ours:?} / {theirs:?}"
        );
        assert_eq!(text(&ours.stderr), text(&theirs.stderr), "{args:?}");
        if theirs.stdout.starts_with(b"mosquitto_passwd is a tool") {
            assert!(
                text(&ours.stdout).contains("Usage: starling passwd"),
                "{args:?}: usage"
            );
        } else {
            assert_eq!(text(&ours.stdout), text(&theirs.stdout), "{args:?}");
        }
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            their_file,
            "{args:?}: the file"
        );
    }
}

#[test]
fn prompts_read_standard_input_as_mosquitto_passwd_does() {
    // mosquitto_passwd asks "Password: " then "Reenter password: " on standard
    // output and reads standard input, so `printf 'pw\npw\n' | ...` works.
    let scratch = Scratch::new("passwd-prompt");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap();
    for (input, code, stderr) in [
        ("pw\npw\n", 0, ""),
        ("pw\nother\n", 2, "Error: Passwords do not match.\n"),
        ("\n", 1, "Error: Empty password.\n"),
        ("", 1, "Error: Empty password.\n"),
    ] {
        let theirs = mosquitto_passwd(&["-c", f, "alice"], input);
        let _ = fs::remove_file(&file);
        let ours = starling_passwd(&["-c", f, "alice"], input);
        assert_eq!(ours.status.code(), Some(code), "{input:?}: {ours:?}");
        assert_eq!(theirs.status.code(), Some(code), "{input:?}: {theirs:?}");
        assert_eq!(text(&ours.stderr), stderr, "{input:?}");
        assert_eq!(
            text(&ours.stdout),
            text(&theirs.stdout),
            "{input:?}: prompts"
        );
        assert_eq!(
            file.exists(),
            code == 0,
            "{input:?}: a file only on success"
        );
    }
    succeeded("-c", starling_passwd(&["-c", f, "alice"], "pw\npw\n"));
    assert!(verifies(&file, "alice", "pw"));
    // Updating asks the same way.
    let out = starling_passwd(&[f, "alice"], "new pw\r\nnew pw\n");
    assert_eq!(text(&out.stdout), "Password: \nReenter password: \n");
    assert!(out.status.success(), "{out:?}");
    assert!(verifies(&file, "alice", "new pw"));
}

#[test]
fn updates_are_atomic_and_keep_the_permissions_upgrade_hashes_plain_text() {
    let scratch = Scratch::new("passwd-atomic");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap();
    fs::write(&file, "# a comment\nalice:secret\n\nbob: hunter2 \n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let inode = fs::metadata(&file).unwrap().ino();
    succeeded("-U", starling_passwd(&["-U", f], ""));
    let after = fs::metadata(&file).unwrap();
    assert_ne!(
        after.ino(),
        inode,
        "replaced by a rename, not rewritten in place"
    );
    assert_eq!(after.mode() & 0o777, 0o640);
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# a comment\nalice:$7$101$"), "{text}");
    assert!(verifies(&file, "alice", "secret") && verifies(&file, "bob", "hunter2"));
    succeeded(
        "-H argon2id",
        starling_passwd(&["-H", "argon2id", "-b", f, "alice", "argon"], ""),
    );
    assert!(fs::read_to_string(&file)
        .unwrap()
        .contains("alice:$argon2id$v=19$m=47104,t=1,p=1$"));
    assert!(verifies(&file, "alice", "argon"));
    assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o640);
    let entries = fs::read_dir(scratch.path("")).unwrap().count();
    assert_eq!(entries, 1, "no temporary file left behind");
}

#[test]
fn the_broker_binary_reads_argon2id_and_reloads_its_password_file_on_sighup() {
    // mosquitto.conf(5) password_file: "Reloaded on reload signal. The
    // currently loaded username and password data will be freed and reloaded."
    let scratch = Scratch::new("passwd-sighup");
    let file = scratch.path("passwd");
    let f = file.to_str().unwrap();
    succeeded(
        "-c",
        starling_passwd(&["-H", "argon2id", "-c", "-b", f, "alice", "first"], ""),
    );
    let broker = BrokerProcess::start(true, &scratch, &format!("password_file {f}\n"));
    assert_eq!(
        broker.publish_as("alice", "first"),
        0,
        "{}",
        broker.log_text()
    );
    assert_eq!(broker.publish_as("alice", "second"), 5);
    succeeded("-b", starling_passwd(&["-b", f, "alice", "second"], ""));
    broker.hang_up();
    let deadline = Instant::now() + WAIT;
    while broker.publish_as("alice", "second") != 0 {
        assert!(
            Instant::now() < deadline,
            "not reloaded:\n{}",
            broker.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(broker.publish_as("alice", "first"), 5);
    // A file that cannot be read keeps the one in force.
    fs::remove_file(&file).unwrap();
    broker.hang_up();
    let deadline = Instant::now() + WAIT;
    while !broker.log_text().contains("reload failed") {
        assert!(
            Instant::now() < deadline,
            "no error logged:\n{}",
            broker.log_text()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(broker.publish_as("alice", "second"), 0);
}
