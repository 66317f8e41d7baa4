//! Bad storage and where the store lives: a damaged store, a full disk,
//! `persistence false`, `--data-dir` and the default directory.

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use starling_proto::{Delivery, Packet, PacketId, QoS, ReasonCode};

use super::common::raw::{message, retained, text, Login, Raw, Recv};
use super::common::restartable::{Starling, Stop};
use super::common::{Scratch, WAIT};
use super::{payloads, publish_marker, resume};

/// A store that cannot be read stops the start with status 1 and an error
/// naming the store and the reason; the damaged file is left as it was.
/// With `--fresh-if-damaged` the broker moves it aside as
/// `starling.db.damaged-<secs>`, says so, and starts with an empty store that
/// works.
#[test]
fn a_damaged_store_stops_the_start_unless_told_to_start_fresh() {
    let mut broker = Starling::new("damaged", "").started();
    let port = broker.port();
    let (mut publisher, _) = Raw::connect(port, Login::v5("damaged-pub"));
    publisher.publish(retained("damaged/t", "before", QoS::AtLeastOnce));
    publisher.disconnect();
    broker.stop(Stop::Graceful);

    let store = broker.store_file();
    assert!(store.exists(), "no store at {}", store.display());
    let garbage = b"this is not a SQLite database, it is garbage\n".repeat(200);
    fs::write(&store, &garbage).expect("overwrite the store");
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", store.display()));
    }

    let (status, log) = broker.run_to_exit();
    assert_eq!(
        status.code(),
        Some(1),
        "a damaged store must stop the start with status 1; log:\n{log}"
    );
    assert!(
        log.contains(&store.display().to_string()),
        "the error must name the store {}; log:\n{log}",
        store.display()
    );
    assert!(
        ["not a database", "corrupt", "malformed", "damaged"]
            .iter()
            .any(|reason| log.contains(reason)),
        "the error must give the reason; log:\n{log}"
    );
    assert_eq!(
        fs::read(&store).expect("the store is still there"),
        garbage,
        "without --fresh-if-damaged the damaged store is left untouched"
    );
    assert!(damaged_copies(broker.data_dir()).is_empty());

    broker.add_args(["--fresh-if-damaged"]);
    broker.start();
    let moved = damaged_copies(broker.data_dir());
    assert_eq!(
        moved.len(),
        1,
        "one starling.db.damaged-<secs> beside the new store; found {moved:?}"
    );
    let name = moved[0].file_name().unwrap().to_string_lossy().into_owned();
    let secs = name.trim_start_matches("starling.db.damaged-");
    assert!(
        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()),
        "{name}: starling.db.damaged-<unix seconds>"
    );
    assert_eq!(
        fs::read(&moved[0]).unwrap(),
        garbage,
        "{name} keeps the damaged bytes"
    );
    let log = broker.current_log();
    assert!(
        log.contains(&name),
        "the log must say where the damaged store went ({name}); log:\n{log}"
    );
    // The fresh store is empty, and works.
    let (mut check, _) = Raw::connect(port, Login::v5("damaged-check"));
    check.subscribe_one("damaged/#", QoS::AtLeastOnce);
    check.publish(retained("damaged/u", "after", QoS::AtLeastOnce));
    publish_marker(port, "damaged/zz", QoS::AtLeastOnce);
    let (messages, _) = check.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["after"],
        "the fresh store starts empty"
    );
    check.disconnect();
    broker.restart(Stop::Kill);
    let (mut check, _) = Raw::connect(port, Login::v5("damaged-check"));
    check.subscribe_one("damaged/#", QoS::AtLeastOnce);
    publish_marker(port, "damaged/zz", QoS::AtLeastOnce);
    let (messages, _) = check.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["after"],
        "the fresh store keeps what it stores"
    );
    check.disconnect();
}

/// The `starling.db.damaged-*` files in `dir`.
fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read the store directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("starling.db.damaged-") && !n.ends_with("-wal"))
        })
        .collect();
    found.sort();
    found
}

/// A tmpfs mounted for one test, unmounted on drop (also when the test
/// fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `dir`. Fails the test, never skips it,
    /// when it cannot (the tests run as root, here and in CI).
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs on {} ({}: {}): the full-disk tests need root \
             (CAP_SYS_ADMIN) to mount one; they are not skipped",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// A broker whose store is on a 2 MiB tmpfs, and a filler file to take the
/// room away. Fields drop in order: the broker, then the tmpfs (busy while
/// the broker holds the store open), then the directory.
struct FullDisk {
    broker: Starling,
    filler: PathBuf,
    _tmpfs: Tmpfs,
    _scratch: Scratch,
}

impl FullDisk {
    fn start(label: &str) -> FullDisk {
        let scratch = Scratch::new(label);
        let dir = scratch.path("store");
        let tmpfs = Tmpfs::mount(&dir, "2m");
        let broker = Starling::new(label, "").data_dir_at(dir.clone()).started();
        FullDisk {
            broker,
            filler: dir.join("filler"),
            _tmpfs: tmpfs,
            _scratch: scratch,
        }
    }

    /// Fills the file system but for 128 KiB.
    fn fill(&self) {
        use std::io::Write;
        let mut file = fs::File::create(&self.filler).expect("create the filler");
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut written = 0u64;
        while let Ok(n) = file.write(&chunk) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        file.set_len(written.saturating_sub(128 * 1024))
            .expect("shrink the filler");
    }

    /// Gives the room back.
    fn free(&self) {
        fs::remove_file(&self.filler).expect("remove the filler");
    }
}

/// A 32 KiB payload starting with its number: "000042:xxxx...".
fn big(i: usize) -> String {
    format!("{i:06}:{}", "x".repeat(32 * 1024))
}

/// Sends a QoS 1 PUBLISH of `payload` on `topic`; its packet identifier.
fn send_qos1(client: &mut Raw, topic: &str, payload: String) -> PacketId {
    let id = client.next_packet_id();
    let mut publish = message(topic, payload, QoS::AtLeastOnce);
    publish.delivery = Delivery::AtLeastOnce(id);
    client.send(Packet::Publish(publish));
    id
}

/// The PUBACK of `id` within `timeout`: its reason code, or `None`.
fn puback_within(client: &mut Raw, id: PacketId, timeout: Duration) -> Option<ReasonCode> {
    match answer_within(client, id, timeout) {
        Answer::PubAck(code) => Some(code),
        Answer::Nothing => None,
        Answer::Disconnect(code) => panic!("expected PUBACK {id}, got DISCONNECT {code}"),
    }
}

/// What the broker answered a QoS 1 PUBLISH with.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    PubAck(ReasonCode),
    /// A v5 DISCONNECT with this reason (the connection then closes).
    Disconnect(ReasonCode),
    Nothing,
}

fn answer_within(client: &mut Raw, id: PacketId, timeout: Duration) -> Answer {
    match client.recv(timeout) {
        Recv::Packet(Packet::PubAck(ack)) if ack.packet_id == id => Answer::PubAck(ack.reason_code),
        Recv::Packet(Packet::Disconnect(d)) => Answer::Disconnect(d.reason_code),
        Recv::Timeout => Answer::Nothing,
        other => panic!("expected PUBACK {id} or DISCONNECT, got {other:?}"),
    }
}

/// When the store cannot be written (a full disk), QoS 1 PUBLISHes are
/// refused: v5 PUBACK 0x97 Quota exceeded, 3.1.1 publishers disconnected;
/// QoS 0 keeps flowing to online subscribers and clients can still connect;
/// once space returns the broker acknowledges again by itself, a PUBLISH
/// caught in the batch that failed is acknowledged then (stored, not lost),
/// and everything acknowledged survives a crash.
#[test]
fn a_full_disk_refuses_qos1_and_recovers() {
    let mut disk = FullDisk::start("full-disk");
    let port = disk.broker.port();
    let login = Login::v5("full-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("full/q1", QoS::AtLeastOnce);
    sub.disconnect();
    let (mut live, _) = Raw::connect(port, Login::v5("full-live"));
    live.subscribe_one("full/q0", QoS::AtMostOnce);
    // Everyone connects while there is room.
    let (first, _) = Raw::connect(port, Login::v5("full-pub-a"));
    let (mut second, _) = Raw::connect(port, Login::v5("full-pub-b"));
    let (mut qos0, _) = Raw::connect(port, Login::v5("full-pub-q0"));
    let (mut old, _) = Raw::connect(port, Login::v311("full-pub3"));
    let (mut after, _) = Raw::connect(port, Login::v5("full-pub-after"));

    disk.fill();
    // The PUBLISH whose batch hits the full disk is not acknowledged: its
    // publisher is disconnected with 0x97 once the broker knows the store is
    // failing (the broker keeps the batch and retries it); one sent after
    // that is refused at once.
    let mut acked = Vec::new();
    let mut refused = None;
    let mut caught = false;
    let mut first = Some(first);
    for i in 0..100 {
        let client = first.as_mut().expect("connected");
        let id = send_qos1(client, "full/q1", big(i));
        match answer_within(client, id, Duration::from_secs(3)) {
            Answer::PubAck(code) if code.is_error() => {
                refused = Some(code);
                break;
            }
            Answer::PubAck(_) => acked.push(format!("{i:06}")),
            Answer::Disconnect(code) => {
                assert_eq!(
                    code,
                    ReasonCode::QUOTA_EXCEEDED,
                    "full-pub-a: PUBLISH {i}, caught by the full disk: DISCONNECT 0x97"
                );
                caught = true;
                first = None;
                break;
            }
            Answer::Nothing => panic!(
                "full-pub-a: PUBLISH {i} got no answer within 3 s on a full disk: \
                 neither PUBACK nor DISCONNECT"
            ),
        }
    }
    if caught {
        let id = send_qos1(&mut second, "full/q1", big(500));
        refused = puback_within(&mut second, id, Duration::from_secs(3));
        assert!(
            refused.is_some(),
            "full-pub-b: no PUBACK within 3 s for a QoS 1 PUBLISH sent while the store \
             cannot be written; it must be refused at once (0x97)"
        );
    }
    let refused = refused.unwrap_or_else(|| {
        panic!("100 PUBLISHes of 32 KiB on a full 2 MiB file system and none refused")
    });
    assert_eq!(
        refused,
        ReasonCode::QUOTA_EXCEEDED,
        "a QoS 1 PUBLISH that cannot be stored (disk full): PUBACK 0x97"
    );

    // QoS 0 still flows, and clients can still connect.
    qos0.publish(message("full/q0", "live", QoS::AtMostOnce));
    let got = live.expect_message("a QoS 0 message while the disk is full");
    assert_eq!(text(&got), "live");
    match Raw::try_connect(port, Login::v5("full-late")) {
        Ok((late, _)) => late.disconnect(),
        Err(e) => panic!("a client connecting while the disk is full: {e}"),
    }

    // A 3.1.1 publisher cannot be told: it is disconnected.
    send_qos1(&mut old, "full/q1", big(999_999));
    assert!(
        old.closed_within(WAIT),
        "a 3.1.1 QoS 1 PUBLISH that cannot be stored must close the connection"
    );

    // Space returns: the broker acknowledges again within a few seconds.
    disk.free();
    let freed_at = Instant::now();
    for attempt in 100.. {
        let code = after.publish(message("full/q1", big(attempt), QoS::AtLeastOnce));
        if !code.is_error() {
            acked.push(format!("{attempt:06}"));
            break;
        }
        assert!(
            freed_at.elapsed() < Duration::from_secs(10),
            "still refusing ({code}) 10 s after space returned"
        );
        thread::sleep(Duration::from_millis(200));
    }
    for client in first.into_iter().chain([second, qos0, after, live]) {
        client.disconnect();
    }

    // What was acknowledged was stored.
    disk.broker.restart(Stop::Kill);
    let mut sub = resume(port, login, Stop::Kill);
    publish_marker(port, "full/q1", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    let received: HashSet<String> = messages
        .iter()
        .map(|m| text(m).split(':').next().unwrap_or_default().to_owned())
        .collect();
    let lost: Vec<&String> = acked.iter().filter(|id| !received.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged messages lost after the SIGKILL: {lost:?}"
    );
    sub.disconnect();
}

/// A publisher whose PUBLISH is in the batch that hits the full disk is not
/// left waiting with no answer (its client would give up on a live broker
/// when PINGREQ goes unanswered [MQTT-3.12.4-1]): within a few seconds it gets
/// PUBACK 0x97 or DISCONNECT 0x97, and once space returns a new connection's
/// QoS 1 PUBLISH is acknowledged.
#[test]
fn a_publisher_caught_by_a_full_disk_is_told_and_not_left_waiting() {
    let disk = FullDisk::start("full-disk-served");
    let port = disk.broker.port();
    let (mut sub, _) = Raw::connect(port, Login::v5("caught-sub").persistent());
    sub.subscribe_one("caught/t", QoS::AtLeastOnce);
    sub.disconnect();
    let (mut publisher, _) = Raw::connect(port, Login::v5("caught-pub"));
    disk.fill();
    for i in 0..100 {
        let id = send_qos1(&mut publisher, "caught/t", big(i));
        match answer_within(&mut publisher, id, Duration::from_secs(3)) {
            Answer::PubAck(code) if !code.is_error() => continue,
            Answer::PubAck(code) | Answer::Disconnect(code) => {
                assert_eq!(code, ReasonCode::QUOTA_EXCEEDED, "PUBLISH {i} refused");
                break;
            }
            Answer::Nothing => panic!(
                "PUBLISH {i} got no answer within 3 s on a full disk: the publisher is left \
                 waiting"
            ),
        }
    }
    disk.free();
    let freed_at = Instant::now();
    loop {
        let (mut again, _) = Raw::connect(port, Login::v5("caught-pub"));
        let code = again.publish(message("caught/t", "after", QoS::AtLeastOnce));
        again.disconnect();
        if !code.is_error() {
            break;
        }
        assert!(
            freed_at.elapsed() < Duration::from_secs(10),
            "still refusing ({code}) 10 s after space returned"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// `persistence false` writes nothing: no `starling.db` where
/// `persistence_location` or `STARLING_DATA_DIR` point, and a restart
/// forgets retained messages and sessions.
#[test]
fn persistence_false_stores_nothing() {
    let mut broker = Starling::with_conf("no-persistence", |port, data| {
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             persistence_location {}\n",
            data.display()
        )
    })
    .started();
    let port = broker.port();
    let login = Login::v5("nop-sub").persistent();
    let (mut sub, _) = Raw::connect(port, login.clone());
    sub.subscribe_one("nop/t", QoS::AtLeastOnce);
    sub.disconnect();
    let (mut publisher, _) = Raw::connect(port, Login::v5("nop-pub"));
    publisher.publish(retained("nop/r", "retained", QoS::AtLeastOnce));
    publisher.publish(message("nop/t", "queued", QoS::AtLeastOnce));
    publisher.disconnect();
    broker.restart(Stop::Graceful);

    for dir in [broker.data_dir().to_path_buf(), broker.default_data_dir()] {
        let files: Vec<_> = fs::read_dir(&dir)
            .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            files.is_empty(),
            "persistence false wrote {files:?} in {}",
            dir.display()
        );
    }
    let (mut sub, connack) = Raw::connect(port, login.clean(false));
    assert!(
        !connack.session_present,
        "persistence false: the session outlived the broker"
    );
    sub.subscribe_one("nop/#", QoS::AtLeastOnce);
    publish_marker(port, "nop/zz", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert!(
        messages.is_empty(),
        "persistence false: {:?} outlived the broker",
        payloads(&messages)
    );
    sub.disconnect();
}

/// `--data-dir DIR` puts the store in DIR, and the broker uses it across a
/// restart; without it or `persistence_location`, the store goes to
/// `$STARLING_DATA_DIR`.
#[test]
fn data_dir_flag_and_default_directory_hold_the_store() {
    let plain = |port: u16, _: &Path| format!("listener {port} 127.0.0.1\nallow_anonymous true\n");
    let mut broker = Starling::with_conf("data-dir", plain);
    let dir = broker.scratch().path("from-the-command-line");
    fs::create_dir_all(&dir).unwrap();
    broker.add_args([OsString::from("--data-dir"), dir.clone().into_os_string()]);
    broker.start();
    let port = broker.port();
    let (mut publisher, _) = Raw::connect(port, Login::v5("dd-pub"));
    publisher.publish(retained("dd/r", "kept", QoS::AtLeastOnce));
    publisher.disconnect();
    broker.restart(Stop::Kill);
    assert!(
        dir.join("starling.db").is_file(),
        "--data-dir {}: no starling.db there",
        dir.display()
    );
    assert!(
        !broker.default_data_dir().join("starling.db").exists(),
        "--data-dir given, yet a store in STARLING_DATA_DIR"
    );
    let (mut sub, _) = Raw::connect(port, Login::v5("dd-sub"));
    sub.subscribe_one("dd/#", QoS::AtLeastOnce);
    publish_marker(port, "dd/zz", QoS::AtLeastOnce);
    let (messages, _) = sub.messages_until(b"marker");
    assert_eq!(
        payloads(&messages),
        ["kept"],
        "the store of --data-dir after a restart"
    );
    sub.disconnect();
    drop(broker);

    let broker = Starling::with_conf("default-dir", plain).started();
    let (mut publisher, _) = Raw::connect(broker.port(), Login::v5("dd-pub"));
    publisher.publish(retained("dd/r", "kept", QoS::AtLeastOnce));
    publisher.disconnect();
    let deadline = Instant::now() + WAIT;
    let default = broker.default_data_dir().join("starling.db");
    while !default.is_file() {
        assert!(
            Instant::now() < deadline,
            "no store in STARLING_DATA_DIR ({}) when nothing names another",
            default.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}
