//! Authentication and access control over real sockets: password files made by
//! Debian's `mosquitto_passwd`, `allow_anonymous`, the failed-login slow-down,
//! ACL checks on PUBLISH, SUBSCRIBE and every delivery (retained and queued
//! messages included), `$SYS`, wills, `per_listener_settings`, and reloads
//! while clients stay connected; for 3.1.1 and 5.0 clients.
//!
//! A missing `mosquitto_passwd` fails the test: scripts/test installs it.

mod common;

use std::fs;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use starling_broker::auth::limiter::LoginDelay;
use starling_broker::auth::password::PasswordHash;
use starling_broker::config::{Listener, Security};
use starling_broker::stats::Stats;
use starling_broker::{Broker, Config};
use starling_proto::{
    ConnAck, Connect, MqttString, Packet, ProtocolVersion, QoS, ReasonCode, Will,
};
use tokio::net::TcpListener;

/// No slow-down, for the tests that fail logins on purpose.
const NO_DELAY: LoginDelay = LoginDelay {
    first: Duration::ZERO,
    max: Duration::ZERO,
    forget: Duration::from_secs(60),
};

/// A directory of its own for password and ACL files, removed on drop.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn new(label: &str) -> Files {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("starling-auth-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Files { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An installed tool; panics (never skips) when it is missing.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed: run scripts/test, which installs mosquitto (it holds mosquitto_passwd)")
        })
}

/// Runs Debian's `mosquitto_passwd` with `args`, which must succeed.
fn mosquitto_passwd(args: &[&str]) {
    let out = Command::new(tool("mosquitto_passwd"))
        .args(args)
        .output()
        .expect("run mosquitto_passwd");
    assert!(out.status.success(), "mosquitto_passwd {args:?}: {out:?}");
}

/// A password file line made by Starling's own hashing (fast, fixed salt).
fn entry(user: &str, password: &str) -> String {
    let hash = PasswordHash::pbkdf2_sha512(
        password.as_bytes(),
        b"saltsaltsalt",
        NonZeroU32::new(101).unwrap(),
    );
    format!("{user}:{hash}\n")
}

fn config(allow_anonymous: bool, password_file: Option<&Path>, acl_file: Option<&Path>) -> Config {
    Config {
        sys_interval: None,
        allow_anonymous,
        password_file: password_file.map(Path::to_path_buf),
        acl_file: acl_file.map(Path::to_path_buf),
        login_delay: NO_DELAY,
        ..Config::default()
    }
}

/// A CONNECT as `id`, with a user name and password if given.
fn login(
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Connect {
    let mut c = connect(version, id);
    c.username = user.map(|u| MqttString::try_from(u).unwrap());
    c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
    c
}

async fn attempt(broker: &TestBroker, connect: Connect) -> (RawClient, ConnAck) {
    connect_with(broker, connect).await
}

/// Connects and asserts success.
async fn logged_in(
    broker: &TestBroker,
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> RawClient {
    let (client, ack) = attempt(broker, login(version, id, user, password)).await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::SUCCESS,
        "{version}: {id} {user:?}"
    );
    client
}

/// Connects and asserts the refusal Mosquitto sends for any bad login:
/// 0x87 Not authorized (v5), return code 5 (3.x); then the connection closes.
async fn refused(broker: &TestBroker, connect: Connect) {
    let version = connect.protocol;
    let what = format!("{version}: {:?}", connect.username);
    let (mut client, ack) = attempt(broker, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED, "{what}");
    if !version.is_v5() {
        assert_eq!(ack.reason_code.to_connect_return_code(), 5, "{what}");
    }
    assert!(!ack.session_present, "[MQTT-3.2.2-6] {what}");
    assert!(
        client.expect_closed().await.is_empty(),
        "[MQTT-3.2.2-7] {what}"
    );
}

fn payloads(received: &[starling_proto::Publish]) -> Vec<String> {
    let mut texts: Vec<String> = received
        .iter()
        .map(|p| format!("{}={}", p.topic, text(p)))
        .collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn password_files_written_by_mosquitto_passwd_are_accepted() {
    // mosquitto.conf(5) password_file: "The file can be created using the
    // mosquitto_passwd(1) utility ... If allow_anonymous is set to false, only
    // users defined in this file will be able to connect." mosquitto_passwd(1):
    // -H sha512-pbkdf2 (the default) and -H sha512; -I sets the iterations.
    let files = Files::new("mosquitto-passwd");
    let pw = files.path("passwd");
    let pw_text = pw.to_str().unwrap();
    mosquitto_passwd(&["-c", "-b", pw_text, "alice", "secret"]);
    mosquitto_passwd(&["-H", "sha512", "-b", pw_text, "bob", "hunter2"]);
    mosquitto_passwd(&["-I", "1000", "-b", pw_text, "carol", "1000 rounds"]);
    let written = fs::read_to_string(&pw).unwrap();
    assert!(written.contains("alice:$7$101$"), "{written}");
    assert!(written.contains("bob:$6$"), "{written}");
    assert!(written.contains("carol:$7$1000$"), "{written}");

    let broker = TestBroker::with_config(config(false, Some(&pw), None)).await;
    for version in [V3_1_1, V5, ProtocolVersion::V3_1] {
        for (user, password) in [
            ("alice", "secret"),
            ("bob", "hunter2"),
            ("carol", "1000 rounds"),
        ] {
            let client = logged_in(&broker, version, "ok", Some(user), Some(password)).await;
            send_disconnect(client).await;
        }
        refused(&broker, login(version, "c", Some("alice"), Some("Secret"))).await;
        refused(&broker, login(version, "c", Some("bob"), Some("secret"))).await;
        refused(
            &broker,
            login(version, "c", Some("mallory"), Some("secret")),
        )
        .await;
        refused(&broker, login(version, "c", None, None)).await;
    }
    // A v5 client may send a password without a user name; 3.1.1 may not
    // [MQTT-3.1.2-22], and the decoder refuses that.
    refused(&broker, login(V5, "c", Some("alice"), None)).await;
    refused(&broker, login(V5, "c", None, Some("secret"))).await;
    assert_eq!(
        broker.broker.session_count(),
        0,
        "no session for a refused client"
    );
    broker.stop().await;
}

#[tokio::test]
async fn anonymous_clients_with_and_without_a_password_file() {
    // mosquitto.conf(5) password_file: "Setting allow_anonymous to true when
    // password_file is defined is valid"; named clients are still checked.
    let files = Files::new("anonymous");
    let pw = files.write("passwd", &entry("alice", "pw"));
    let broker = TestBroker::with_config(config(true, Some(&pw), None)).await;
    for version in [V3_1_1, V5] {
        send_disconnect(logged_in(&broker, version, "anon", None, None).await).await;
        send_disconnect(logged_in(&broker, version, "a", Some("alice"), Some("pw")).await).await;
        refused(&broker, login(version, "e", Some("eve"), Some("pw"))).await;
    }
    broker.stop().await;

    // Without a password file nothing can vouch for a user name: Mosquitto 2
    // lets everyone in or no one, as allow_anonymous says.
    let broker = TestBroker::with_config(config(false, None, None)).await;
    for version in [V3_1_1, V5] {
        refused(&broker, login(version, "n", Some("named"), Some("x"))).await;
        refused(&broker, login(version, "anon", None, None)).await;
    }
    broker.stop().await;
    let broker = TestBroker::with_config(config(true, None, None)).await;
    send_disconnect(logged_in(&broker, V5, "n", Some("anyone"), Some("x")).await).await;
    broker.stop().await;
}

#[tokio::test]
async fn repeated_failures_from_one_address_are_slowed_down_without_blocking_others() {
    // The slow-down: from the second failure in a row, each CONNACK
    // from that address waits twice as long as the last, up to a cap; the
    // waiting connection holds only its own task.
    let files = Files::new("slow");
    let pw = files.write("passwd", &entry("alice", "right"));
    let delay = LoginDelay {
        first: Duration::from_millis(300),
        max: Duration::from_millis(600),
        forget: Duration::from_secs(60),
    };
    let broker = TestBroker::with_config(Config {
        login_delay: delay,
        ..config(true, Some(&pw), None)
    })
    .await;
    let timed = |broker: &TestBroker, password: &'static str| {
        let connect = login(V5, "guess", Some("alice"), Some(password));
        let addr = broker.addr;
        async move {
            let start = tokio::time::Instant::now();
            let mut client = RawClient::connect(addr, V5).await;
            let ack = client.handshake(connect).await;
            (ack.reason_code, start.elapsed())
        }
    };
    let (code, first) = timed(&broker, "wrong").await;
    assert_eq!(code, ReasonCode::NOT_AUTHORIZED);
    assert!(
        first < Duration::from_millis(250),
        "first failure answered at once: {first:?}"
    );
    let (_, second) = timed(&broker, "wrong").await;
    assert!(
        second >= Duration::from_millis(300),
        "second waits 300 ms: {second:?}"
    );
    let (_, third) = timed(&broker, "wrong").await;
    assert!(
        third >= Duration::from_millis(600),
        "third waits 600 ms: {third:?}"
    );

    // Another user at the same address (another device behind the same
    // carrier NAT) is not slowed by alice's failures: records are kept per
    // address and user name.
    let start = tokio::time::Instant::now();
    let mut client = RawClient::connect(broker.addr, V5).await;
    let ack = client
        .handshake(login(V5, "neighbour", Some("bob"), Some("wrong")))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "bob waited for alice's failures: {:?}",
        start.elapsed()
    );
    // Counted for $SYS/broker/clients/logins/{failed,delayed}.
    let auth = &broker.broker.auth;
    assert_eq!(Stats::get(&auth.logins_failed), 4);
    assert_eq!(Stats::get(&auth.logins_delayed), 2);

    // While a fourth guess is held, another client is served at once.
    let held = tokio::spawn(timed(&broker, "wrong"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = tokio::time::Instant::now();
    let other = logged_in(&broker, V3_1_1, "bystander", None, None).await;
    assert!(
        start.elapsed() < Duration::from_millis(250),
        "another client waited {:?}",
        start.elapsed()
    );
    send_disconnect(other).await;
    let (code, fourth) = held.await.unwrap();
    assert_eq!(code, ReasonCode::NOT_AUTHORIZED);
    assert!(
        fourth >= Duration::from_millis(600),
        "capped at 600 ms: {fourth:?}"
    );

    // The right password waits as the last failure did, then the record is gone.
    let (code, success) = timed(&broker, "right").await;
    assert_eq!(code, ReasonCode::SUCCESS);
    assert!(success >= Duration::from_millis(600), "{success:?}");
    let (_, fresh) = timed(&broker, "wrong").await;
    assert!(
        fresh < Duration::from_millis(250),
        "forgotten after a success: {fresh:?}"
    );
    broker.stop().await;
}

const PUBLISH_ACL: &str = "# anonymous clients\n\
    topic readwrite ok/#\n\
    topic read ro/#\n";

#[tokio::test]
async fn a_denied_publish_gets_0x87_in_v5_and_is_dropped_silently_in_3_1_1() {
    // MQTT 5.0 §3.4.2.1 / §3.5.2.1: PUBACK / PUBREC 0x87 "Not authorized: The
    // PUBLISH is not authorized". 3.1.1 has no such code: Mosquitto
    // acknowledges the message and drops it. mosquitto.conf(5) acl_file:
    // "only the topics listed will have access".
    let files = Files::new("publish");
    let acl = files.write("acl", PUBLISH_ACL);
    let broker = TestBroker::with_config(config(true, None, Some(&acl))).await;
    let mut reader = connected(&broker, V5, "reader").await;
    let codes = subscribe(
        &mut reader,
        1,
        &[
            ("ok/#", opts(QoS::ExactlyOnce)),
            ("ro/#", opts(QoS::ExactlyOnce)),
        ],
        None,
    )
    .await;
    assert_eq!(
        codes,
        [ReasonCode::GRANTED_QOS_2, ReasonCode::GRANTED_QOS_2]
    );

    let mut v5 = connected(&broker, V5, "writer5").await;
    assert_eq!(
        publish_flow(&mut v5, message("ro/x", "q1", QoS::AtLeastOnce, 1)).await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        publish_flow(&mut v5, message("ro/x", "q2", QoS::ExactlyOnce, 2)).await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        publish_flow(&mut v5, message("ro/x", "q0", QoS::AtMostOnce, 0)).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(
        publish_flow(&mut v5, message("elsewhere", "q1", QoS::AtLeastOnce, 3)).await,
        ReasonCode::NOT_AUTHORIZED
    );
    assert_eq!(
        publish_flow(&mut v5, message("ok/v5", "yes", QoS::AtLeastOnce, 4)).await,
        ReasonCode::SUCCESS
    );

    let mut v3 = connected(&broker, V3_1_1, "writer3").await;
    for (id, qos) in [
        (1, QoS::AtLeastOnce),
        (2, QoS::ExactlyOnce),
        (3, QoS::AtMostOnce),
    ] {
        let code = publish_flow(&mut v3, message("ro/x", "dropped", qos, id)).await;
        assert_eq!(code, ReasonCode::SUCCESS, "3.1.1 {qos:?}: acknowledged");
    }
    publish_flow(&mut v3, message("ok/v3", "yes", QoS::AtLeastOnce, 4)).await;
    assert_eq!(
        payloads(&drain(&mut reader).await),
        ["ok/v3=yes", "ok/v5=yes"]
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_denied_subscription_gets_0x80_in_3_1_1_and_0x87_in_v5_per_filter() {
    // MQTT 3.1.1 §3.9.3: return code 0x80 Failure; MQTT 5.0 §3.9.3: 0x87 Not
    // authorized; [MQTT-3.9.3-1]: one code per filter, in order. A filter is
    // refused when no rule lets it read anything, or a deny covers it.
    let files = Files::new("subscribe");
    let acl = files.write(
        "acl",
        "topic read news/#\ntopic deny news/secret/#\ntopic write cmd/#\n",
    );
    let broker = TestBroker::with_config(config(true, None, Some(&acl))).await;
    for (version, denied) in [
        (V3_1_1, ReasonCode::UNSPECIFIED_ERROR),
        (V5, ReasonCode::NOT_AUTHORIZED),
    ] {
        let mut client = connected(&broker, version, "subscriber").await;
        let codes = subscribe(
            &mut client,
            1,
            &[
                ("news/#", opts(QoS::AtLeastOnce)),
                ("cmd/#", opts(QoS::AtLeastOnce)),
                ("#", opts(QoS::AtMostOnce)),
                ("news/secret/+", opts(QoS::AtLeastOnce)),
                ("$share/g/news/+", opts(QoS::AtLeastOnce)),
                ("$share/g/cmd/+", opts(QoS::AtLeastOnce)),
            ],
            None,
        )
        .await;
        assert_eq!(
            codes,
            [
                ReasonCode::GRANTED_QOS_1,
                denied,
                ReasonCode::GRANTED_QOS_0,
                denied,
                ReasonCode::GRANTED_QOS_1,
                denied,
            ],
            "{version}"
        );
        send_disconnect(client).await;
    }
    assert_eq!(broker.broker.subscription_count(), 0);
    broker.stop().await;
}

const READER_ACL: &str = "user writer\n\
    topic write #\n\
    user reader\n\
    topic read news/#\n\
    topic deny news/secret\n";

#[tokio::test]
async fn every_delivery_is_checked_retained_messages_included() {
    // mosquitto.conf(5) acl_file: "deny ... to explicitly deny access to a
    // topic that would otherwise be granted by a broader read/write/readwrite
    // statement"; a subscription wider than the ACL (`#`) delivers only what
    // the ACL lets the client read, retained messages as live ones
    // ([MQTT-3.3.1-9] sends them at subscribe).
    let files = Files::new("deliveries");
    let acl = files.write("acl", READER_ACL);
    // No password file and anonymous clients allowed: any user name gets in,
    // and the ACL goes by it.
    let broker = TestBroker::with_config(config(true, None, Some(&acl))).await;
    let mut writer = logged_in(&broker, V5, "w", Some("writer"), None).await;
    for (topic, payload) in [
        ("news/public", "r1"),
        ("news/secret", "r2"),
        ("other/x", "r3"),
    ] {
        let code = publish_flow(&mut writer, retained(topic, payload, QoS::AtLeastOnce, 1)).await;
        assert!(!code.is_error(), "{topic}: {code:?}");
    }
    for version in [V3_1_1, V5] {
        let mut reader = logged_in(
            &broker,
            version,
            &format!("r{version}"),
            Some("reader"),
            None,
        )
        .await;
        let codes = subscribe(&mut reader, 1, &[("#", opts(QoS::AtLeastOnce))], None).await;
        assert_eq!(codes, [ReasonCode::GRANTED_QOS_1], "{version}");
        assert_eq!(
            payloads(&drain(&mut reader).await),
            ["news/public=r1"],
            "{version}: retained"
        );
        for (topic, payload) in [
            ("news/live", "l1"),
            ("news/secret", "l2"),
            ("other/y", "l3"),
        ] {
            publish_flow(&mut writer, message(topic, payload, QoS::AtLeastOnce, 2)).await;
        }
        assert_eq!(
            payloads(&drain(&mut reader).await),
            ["news/live=l1"],
            "{version}: live"
        );
        send_disconnect(reader).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_resumed_session_gets_no_queued_message_its_acl_now_denies() {
    // mosquitto.conf(5) acl_file: "Reloaded on reload signal ... Existing
    // subscriptions will be affected after the reload"; [MQTT-3.1.2-5] (3.1.1)
    // / [MQTT-3.1.2-4] (5.0): a resumed session delivers what was queued,
    // but only what the ACL in force lets the client read. A message sent
    // before and not acknowledged is not sent again either.
    let files = Files::new("queued");
    let acl = files.write(
        "acl",
        "user writer\ntopic write #\nuser reader\ntopic read q/#\n",
    );
    let broker = TestBroker::with_config(config(true, None, Some(&acl))).await;
    let mut writer = logged_in(&broker, V5, "w", Some("writer"), None).await;
    for version in [V3_1_1, V5] {
        fs::write(
            &acl,
            "user writer\ntopic write #\nuser reader\ntopic read q/#\n",
        )
        .unwrap();
        broker
            .broker
            .reload(&config(true, None, Some(&acl)))
            .unwrap();
        let id = format!("persistent-{version}");
        let persistent = || {
            let mut c = login(version, &id, Some("reader"), None);
            c.clean_start = false;
            c.properties.session_expiry_interval = version.is_v5().then_some(300);
            c
        };
        let (mut reader, _) = attempt(&broker, persistent()).await;
        subscribe(&mut reader, 1, &[("q/#", opts(QoS::AtLeastOnce))], None).await;
        // One message delivered and left unacknowledged, then the session goes offline.
        publish_flow(
            &mut writer,
            message("q/inflight", "sent once", QoS::AtLeastOnce, 1),
        )
        .await;
        let first = reader.expect_publish().await;
        assert_eq!(first.topic.as_str(), "q/inflight");
        drop(reader);
        for (topic, payload) in [("q/kept", "k"), ("q/denied", "d")] {
            publish_flow(&mut writer, message(topic, payload, QoS::AtLeastOnce, 2)).await;
        }
        fs::write(
            &acl,
            "user writer\ntopic write #\nuser reader\ntopic read q/kept\n",
        )
        .unwrap();
        broker
            .broker
            .reload(&config(true, None, Some(&acl)))
            .unwrap();
        let (mut reader, ack) = attempt(&broker, persistent()).await;
        assert!(ack.session_present, "{version}");
        assert_eq!(
            payloads(&drain(&mut reader).await),
            ["q/kept=k"],
            "{version}"
        );
        send_disconnect(reader).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_reload_changes_passwords_and_the_acl_while_a_client_stays_connected() {
    // mosquitto.conf(5) password_file: "Reloaded on reload signal ... Clients
    // that are already connected will not be affected"; acl_file: "Existing
    // subscriptions will be affected after the reload". The binary calls
    // Broker::reload on SIGHUP; this is that call.
    let files = Files::new("reload");
    let pw = files.write("passwd", &entry("alice", "old"));
    let acl = files.write("acl", "user alice\ntopic readwrite a/#\n");
    let cfg = config(false, Some(&pw), Some(&acl));
    let broker = TestBroker::with_config(cfg.clone()).await;
    let mut alice = logged_in(&broker, V5, "alice", Some("alice"), Some("old")).await;
    let codes = subscribe(
        &mut alice,
        1,
        &[
            ("a/#", opts(QoS::AtLeastOnce)),
            ("b/#", opts(QoS::AtLeastOnce)),
        ],
        None,
    )
    .await;
    assert_eq!(
        codes,
        [ReasonCode::GRANTED_QOS_1, ReasonCode::NOT_AUTHORIZED]
    );
    assert_eq!(
        publish_flow(&mut alice, message("a/1", "before", QoS::AtLeastOnce, 1)).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(payloads(&drain(&mut alice).await), ["a/1=before"]);

    fs::write(&pw, entry("alice", "new")).unwrap();
    fs::write(&acl, "user alice\ntopic readwrite b/#\n").unwrap();
    let reloaded = broker.broker.reload(&cfg).expect("reload");
    assert!(
        reloaded.warnings.is_empty() && !reloaded.restart_needed,
        "{reloaded:?}"
    );

    // Still connected; the new ACL applies to it at once.
    assert_eq!(
        publish_flow(&mut alice, message("a/2", "after", QoS::AtLeastOnce, 2)).await,
        ReasonCode::NOT_AUTHORIZED
    );
    let codes = subscribe(&mut alice, 2, &[("b/#", opts(QoS::AtLeastOnce))], None).await;
    assert_eq!(codes, [ReasonCode::GRANTED_QOS_1]);
    assert_eq!(
        publish_flow(&mut alice, message("b/1", "after", QoS::AtLeastOnce, 3)).await,
        ReasonCode::SUCCESS
    );
    assert_eq!(payloads(&drain(&mut alice).await), ["b/1=after"]);
    // New logins use the new password.
    refused(&broker, login(V5, "again", Some("alice"), Some("old"))).await;
    send_disconnect(logged_in(&broker, V3_1_1, "again", Some("alice"), Some("new")).await).await;
    send_disconnect(alice).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_bad_file_on_reload_keeps_the_settings_in_force() {
    // The issue: "a bad file keeps the old settings and logs why".
    let files = Files::new("bad-reload");
    let pw = files.write("passwd", &entry("alice", "pw"));
    let acl = files.write("acl", "user alice\ntopic readwrite a/#\n");
    let cfg = config(false, Some(&pw), Some(&acl));
    let broker = TestBroker::with_config(cfg.clone()).await;
    fs::write(&acl, "user alice\ntopic sometimes a/#\n").unwrap();
    let report = broker.broker.reload(&cfg).expect_err("bad ACL");
    assert_eq!(
        (report.errors[0].file.clone(), report.errors[0].line),
        (acl.clone(), 2)
    );
    let missing = config(false, Some(&files.path("nowhere")), Some(&acl));
    let report = broker
        .broker
        .reload(&missing)
        .expect_err("missing password file");
    assert!(
        report.errors[0].reason.starts_with("cannot read the file"),
        "{report:?}"
    );
    let mut alice = logged_in(&broker, V5, "alice", Some("alice"), Some("pw")).await;
    assert_eq!(
        publish_flow(&mut alice, message("a/x", "still", QoS::AtLeastOnce, 1)).await,
        ReasonCode::NO_MATCHING_SUBSCRIBERS
    );
    send_disconnect(alice).await;
    broker.stop().await;
}

#[tokio::test]
async fn anonymous_clients_are_disconnected_when_a_reload_forbids_them() {
    // Mosquitto's reload (mosquitto_security_apply_default) disconnects
    // anonymous clients once allow_anonymous is false; logged-in ones stay.
    let files = Files::new("anon-reload");
    let pw = files.write("passwd", &entry("alice", "pw"));
    let broker = TestBroker::with_config(config(true, Some(&pw), None)).await;
    let mut anon5 = logged_in(&broker, V5, "anon5", None, None).await;
    let mut anon3 = logged_in(&broker, V3_1_1, "anon3", None, None).await;
    let mut alice = logged_in(&broker, V5, "alice", Some("alice"), Some("pw")).await;
    broker
        .broker
        .reload(&config(false, Some(&pw), None))
        .unwrap();
    assert_eq!(
        disconnect_reason(&mut anon5).await,
        Some(ReasonCode::NOT_AUTHORIZED)
    );
    assert_eq!(disconnect_reason(&mut anon3).await, None);
    sync(&mut alice).await;
    send_disconnect(alice).await;
    broker.stop().await;
}

#[tokio::test]
async fn sys_follows_the_acl_and_no_client_may_write_it() {
    // [MQTT-4.7.2-1]: `#` does not match `$SYS/...`, so an ACL needs a `$SYS`
    // rule to let a client read it (mosquitto.conf(5) gives `pattern write
    // $SYS/broker/connection/%c/state` as an example). Mosquitto refuses every
    // client's PUBLISH to $SYS, with or without an ACL.
    let files = Files::new("sys");
    let acl = files.write(
        "acl",
        "user all\ntopic read #\nuser monitor\ntopic read $SYS/broker/#\n",
    );
    let broker = TestBroker::with_config(Config {
        sys_interval: Some(Duration::from_secs(1)),
        ..config(true, None, Some(&acl))
    })
    .await;
    let mut all = logged_in(&broker, V5, "all", Some("all"), None).await;
    let codes = subscribe(
        &mut all,
        1,
        &[
            ("$SYS/#", opts(QoS::AtMostOnce)),
            ("#", opts(QoS::AtMostOnce)),
        ],
        None,
    )
    .await;
    assert_eq!(
        codes,
        [ReasonCode::NOT_AUTHORIZED, ReasonCode::GRANTED_QOS_0]
    );
    let mut monitor = logged_in(&broker, V3_1_1, "monitor", Some("monitor"), None).await;
    subscribe_one(&mut monitor, "$SYS/broker/uptime", opts(QoS::AtMostOnce)).await;
    let uptime = monitor.expect_publish().await;
    assert_eq!(uptime.topic.as_str(), "$SYS/broker/uptime");
    all.expect_nothing(QUIET).await;
    broker.stop().await;

    let broker = TestBroker::start().await;
    let mut client = connected(&broker, V5, "sys-writer").await;
    let code = publish_flow(
        &mut client,
        message("$SYS/broker/uptime", "forged", QoS::AtLeastOnce, 1),
    )
    .await;
    assert_eq!(code, ReasonCode::NOT_AUTHORIZED);
    broker.stop().await;
}

#[tokio::test]
async fn a_will_is_checked_as_a_publish_when_it_is_published() {
    // Mosquitto 2.0 accepts the CONNECT whatever the will topic and checks the
    // will for write access when it publishes it ([MQTT-3.1.2-8]: published
    // when the connection closes without DISCONNECT).
    let files = Files::new("will");
    let acl = files.write("acl", "topic read wills/#\ntopic write wills/allowed\n");
    let broker = TestBroker::with_config(config(true, None, Some(&acl))).await;
    let mut watcher = connected(&broker, V5, "watcher").await;
    subscribe_one(&mut watcher, "wills/#", opts(QoS::AtLeastOnce)).await;
    for version in [V3_1_1, V5] {
        for topic in ["wills/denied", "wills/allowed"] {
            let mut c = connect(version, &format!("willer-{topic}"));
            c.will = Some(Will {
                topic: starling_proto::TopicName::try_from(topic).unwrap(),
                payload: Bytes::from_static(b"gone"),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Default::default(),
            });
            let (client, ack) = attempt(&broker, c).await;
            assert_eq!(ack.reason_code, ReasonCode::SUCCESS, "{version} {topic}");
            drop(client);
        }
        let got = receive(&mut watcher).await;
        assert_eq!(got.topic.as_str(), "wills/allowed", "{version}");
        watcher.expect_nothing(QUIET).await;
    }
    broker.stop().await;
}

/// A broker serving two listeners of its own on 127.0.0.1, with
/// `per_listener_settings` and each listener's security.
async fn two_listener_broker(
    first: Security,
    second: Security,
) -> (
    Arc<Broker>,
    [SocketAddr; 2],
    tokio::sync::oneshot::Sender<()>,
) {
    let sockets = [
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let addrs = [
        sockets[0].local_addr().unwrap(),
        sockets[1].local_addr().unwrap(),
    ];
    let listener = |bind, security| Listener {
        security: Some(security),
        ..Listener::new(bind)
    };
    let config = Config {
        per_listener_settings: true,
        allow_anonymous: false,
        listeners: vec![listener(addrs[0], first), listener(addrs[1], second)],
        ..config(false, None, None)
    };
    let broker = Broker::new(config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(starling_broker::server::serve(
        Arc::clone(&broker),
        sockets.into(),
        async move {
            let _ = stopped.await;
        },
    ));
    (broker, addrs, stop)
}

#[tokio::test]
async fn per_listener_settings_give_each_listener_its_own_security() {
    // mosquitto.conf(5) per_listener_settings: "If true, then authentication
    // and access control settings will be controlled on a per-listener basis"
    // (password_file, acl_file, allow_anonymous, allow_zero_length_clientid,
    // auto_id_prefix).
    let files = Files::new("per-listener");
    let pw = files.write("passwd", &entry("alice", "pw"));
    let acl = files.write("acl", "topic read open/#\n");
    let open = Security {
        allow_anonymous: true,
        acl_file: Some(acl),
        auto_id_prefix: "open-".into(),
        ..Security::default()
    };
    let closed = Security {
        allow_anonymous: false,
        password_file: Some(pw),
        allow_zero_length_clientid: false,
        ..Security::default()
    };
    let (_broker, [a, b], stop) = two_listener_broker(open, closed).await;

    let mut anon = RawClient::connect(a, V5).await;
    let ack = anon.handshake(connect(V5, "")).await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let assigned = ack
        .properties
        .assigned_client_identifier
        .clone()
        .expect("[MQTT-3.2.2-16]");
    assert!(
        assigned.as_str().starts_with("open-"),
        "auto_id_prefix: {assigned}"
    );
    let codes = subscribe(
        &mut anon,
        1,
        &[
            ("open/#", opts(QoS::AtMostOnce)),
            ("closed/#", opts(QoS::AtMostOnce)),
        ],
        None,
    )
    .await;
    assert_eq!(
        codes,
        [ReasonCode::GRANTED_QOS_0, ReasonCode::NOT_AUTHORIZED],
        "listener a's ACL"
    );

    let mut client = RawClient::connect(b, V5).await;
    let ack = client.handshake(connect(V5, "anon")).await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::NOT_AUTHORIZED,
        "listener b: no anonymous clients"
    );
    let mut client = RawClient::connect(b, V5).await;
    let ack = client
        .handshake(login(V5, "", Some("alice"), Some("pw")))
        .await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
        "listener b: no empty ids"
    );
    let mut alice = RawClient::connect(b, V5).await;
    let ack = alice
        .handshake(login(V5, "alice", Some("alice"), Some("pw")))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    let codes = subscribe(&mut alice, 1, &[("closed/#", opts(QoS::AtMostOnce))], None).await;
    assert_eq!(codes, [ReasonCode::GRANTED_QOS_0], "listener b has no ACL");
    let mut anon_on_a_as_alice = RawClient::connect(a, V5).await;
    let ack = anon_on_a_as_alice
        .handshake(login(V5, "x", Some("alice"), Some("wrong")))
        .await;
    assert_eq!(
        ack.reason_code,
        ReasonCode::SUCCESS,
        "listener a has no password file"
    );
    let _ = stop.send(());
}

/// mosquitto.conf(5) `check_retain_source`: a retained message goes to a new
/// subscriber only while its publisher may still publish to its topic (here
/// after a reload takes alice's write access away). Off, it goes.
#[tokio::test]
async fn check_retain_source_withholds_retained_messages_of_publishers_who_lost_access() {
    for check in [true, false] {
        let files = Files::new(&format!("retain-source-{check}"));
        let pw = files.write("passwd", &entry("alice", "pw"));
        let acl = files.write(
            "acl",
            "topic read news/#\nuser alice\ntopic readwrite news/#\n",
        );
        let cfg = Config {
            check_retain_source: check,
            ..config(true, Some(&pw), Some(&acl))
        };
        let broker = TestBroker::with_config(cfg.clone()).await;
        let mut alice = logged_in(&broker, V5, "alice-pub", Some("alice"), Some("pw")).await;
        alice
            .send(Packet::Publish(retained(
                "news/1",
                "scoop",
                QoS::AtLeastOnce,
                1,
            )))
            .await;
        assert!(matches!(alice.recv().await, Some(Packet::PubAck(_))));
        fs::write(&acl, "topic read news/#\nuser alice\ntopic read news/#\n").unwrap();
        broker.broker.reload(&cfg).expect("reload");
        let mut reader = logged_in(&broker, V5, "reader", None, None).await;
        reader.subscribe(1, "news/#", QoS::AtLeastOnce).await;
        if check {
            reader.expect_nothing(QUIET).await;
        } else {
            assert_eq!(&reader.expect_publish().await.payload[..], b"scoop");
        }
        broker.stop().await;
    }
}
