//! The storage contract (issue 6), checked on both engines with one body per
//! rule: every item round-trips through `apply` and `load`, a message goes with
//! its last reference, a restart (reopening the same file) restores everything,
//! expiry is applied at load, and bad files give errors naming the path.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use starling_broker::router::Subscription;
use starling_broker::session::OutboundState;
use starling_broker::storage::{
    Change, Durability, LoadedSession, MemoryStore, MessageId, SessionExpiry, Snapshot,
    SqliteStore, Store, StoreError, StoredDelivery, StoredInflight, StoredMessage, StoredSession,
    StoredWill,
};
use starling_proto::property::PublishProperties;
use starling_proto::{
    MqttString, PacketId, QoS, RetainHandling, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName, UserProperty,
};

/// A whole number of milliseconds, as stores keep time.
fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

fn s(text: &'static str) -> MqttString {
    MqttString::from_static(text)
}

fn pid(id: u16) -> PacketId {
    PacketId::new(id).unwrap()
}

fn message(topic: &'static str, payload: &'static [u8]) -> StoredMessage {
    StoredMessage {
        topic: TopicName::from_static(topic),
        payload: Bytes::from_static(payload),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: PublishProperties::default(),
        expires_at: None,
        publisher: None,
    }
}

fn rich_message() -> StoredMessage {
    StoredMessage {
        topic: TopicName::from_static("sensors/1/temp"),
        payload: Bytes::from_static(b"\x00\xff21.5"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: PublishProperties {
            payload_format_indicator: Some(false),
            message_expiry_interval: Some(86_400),
            response_topic: Some(TopicName::from_static("reply/1")),
            correlation_data: Some(Bytes::from_static(b"corr")),
            content_type: Some(s("application/octet-stream")),
            user_properties: vec![UserProperty {
                name: s("k"),
                value: s("v"),
            }],
            ..PublishProperties::default()
        },
        expires_at: Some(t0() + Duration::from_secs(86_400)),
        publisher: None,
    }
}

fn delivery(message: u64) -> StoredDelivery {
    StoredDelivery {
        message: MessageId(message),
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: Vec::new(),
        shared: None,
    }
}

fn session(client: &'static str) -> StoredSession {
    StoredSession {
        client_id: s(client),
        expiry: SessionExpiry::Never,
        disconnected_at: None,
        will: None,
        subscriptions: Vec::new(),
    }
}

fn rich_session() -> StoredSession {
    StoredSession {
        client_id: s("client-1"),
        expiry: SessionExpiry::After(Duration::from_secs(3_600)),
        disconnected_at: Some(t0()),
        will: Some(StoredWill {
            topic: TopicName::from_static("status/client-1"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: PublishProperties {
                content_type: Some(s("text/plain")),
                ..PublishProperties::default()
            },
            delay: Duration::from_secs(30),
        }),
        subscriptions: vec![
            (
                TopicFilter::from_static("z/#"),
                Subscription {
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                    id: SubscriptionId::new(268_435_455),
                },
            ),
            (
                TopicFilter::from_static("$share/g/a/+"),
                Subscription {
                    options: SubscriptionOptions {
                        retain_handling: RetainHandling::SendAtSubscribeIfNew,
                        ..SubscriptionOptions::new(QoS::AtLeastOnce)
                    },
                    id: None,
                },
            ),
        ],
    }
}

/// One batch holding every kind of item, and the snapshot it must load as.
fn everything() -> (Vec<Change>, Snapshot) {
    let client = s("client-1");
    let queued = StoredDelivery {
        message: MessageId(2),
        qos: QoS::ExactlyOnce,
        retain: true,
        subscription_ids: vec![
            SubscriptionId::new(7).unwrap(),
            SubscriptionId::new(9).unwrap(),
        ],
        shared: Some(TopicFilter::from_static("$share/g/a/+")),
    };
    let inflight = vec![
        StoredInflight {
            packet_id: pid(65_535),
            state: OutboundState::AwaitingPubRec,
            delivery: delivery(3),
        },
        StoredInflight {
            packet_id: pid(1),
            state: OutboundState::AwaitingPubAck,
            delivery: delivery(1),
        },
        StoredInflight {
            packet_id: pid(2),
            state: OutboundState::AwaitingPubComp,
            delivery: delivery(3),
        },
    ];
    let mut batch = vec![
        Change::PutMessage(MessageId(1), message("a/b", b"one")),
        Change::PutMessage(MessageId(2), rich_message()),
        Change::PutMessage(MessageId(3), message("a/c", b"")),
        Change::PutRetained(TopicName::from_static("sensors/1/temp"), MessageId(2)),
        Change::PutSession(rich_session()),
        Change::Enqueue(client.clone(), queued.clone()),
        Change::Enqueue(client.clone(), delivery(1)),
        Change::PutIncomingQos2(client.clone(), pid(300)),
        Change::PutIncomingQos2(client.clone(), pid(5)),
    ];
    batch.extend(
        inflight
            .iter()
            .map(|i| Change::PutInflight(client.clone(), i.clone())),
    );
    let snapshot = Snapshot {
        messages: vec![
            (MessageId(1), message("a/b", b"one")),
            (MessageId(2), rich_message()),
            (MessageId(3), message("a/c", b"")),
        ],
        retained: vec![(TopicName::from_static("sensors/1/temp"), MessageId(2))],
        sessions: vec![LoadedSession {
            session: rich_session(),
            queue: vec![queued, delivery(1)],
            inflight,
            incoming_qos2: vec![pid(5), pid(300)],
        }],
        next_message_id: MessageId(4),
        expired_wills: Vec::new(),
    };
    (batch, snapshot)
}

fn round_trip_every_item(store: &dyn Store) {
    assert_eq!(store.load(t0()).unwrap(), Snapshot::default());
    let (batch, expected) = everything();
    store.apply(&batch).unwrap();
    assert_eq!(store.load(t0()).unwrap(), expected);
}

fn updates_and_removals(store: &dyn Store) {
    let (batch, mut expected) = everything();
    store.apply(&batch).unwrap();
    let client = s("client-1");

    // A state change keeps the in-flight entry's place; a session put again
    // keeps its queue.
    let mut moved = expected.sessions[0].inflight[0].clone();
    moved.state = OutboundState::AwaitingPubComp;
    let mut changed = rich_session();
    changed.disconnected_at = None;
    changed.subscriptions.truncate(1);
    store
        .apply(&[
            Change::PutInflight(client.clone(), moved.clone()),
            Change::PutSession(changed.clone()),
        ])
        .unwrap();
    expected.sessions[0].inflight[0] = moved;
    expected.sessions[0].session = changed;
    assert_eq!(store.load(t0()).unwrap(), expected);

    // Message 1 is queued and in flight: it stays until both are gone.
    store
        .apply(&[
            Change::Dequeue(client.clone(), MessageId(1)),
            Change::RemoveIncomingQos2(client.clone(), pid(5)),
            Change::RemoveRetained(TopicName::from_static("sensors/1/temp")),
        ])
        .unwrap();
    let loaded = store.load(t0()).unwrap();
    assert!(loaded.retained.is_empty());
    assert_eq!(loaded.sessions[0].queue.len(), 1);
    assert_eq!(loaded.sessions[0].incoming_qos2, vec![pid(300)]);
    let ids: Vec<_> = loaded.messages.iter().map(|(id, _)| id.0).collect();
    assert_eq!(ids, [1, 2, 3], "message 2 is still queued");

    store
        .apply(&[Change::RemoveInflight(client.clone(), pid(1))])
        .unwrap();
    let ids: Vec<_> = store
        .load(t0())
        .unwrap()
        .messages
        .iter()
        .map(|(id, _)| id.0)
        .collect();
    assert_eq!(ids, [2, 3]);

    store.apply(&[Change::RemoveSession(client)]).unwrap();
    assert_eq!(store.load(t0()).unwrap(), Snapshot::default());
}

fn rows_for_a_missing_session_are_ignored(store: &dyn Store) {
    let ghost = s("ghost");
    store
        .apply(&[
            Change::PutMessage(MessageId(1), message("t", b"x")),
            Change::Enqueue(ghost.clone(), delivery(1)),
            Change::PutInflight(
                ghost.clone(),
                StoredInflight {
                    packet_id: pid(1),
                    state: OutboundState::AwaitingPubAck,
                    delivery: delivery(1),
                },
            ),
            Change::PutIncomingQos2(ghost, pid(1)),
        ])
        .unwrap();
    assert_eq!(store.load(t0()).unwrap(), Snapshot::default());
}

fn enqueuing_twice_queues_once(store: &dyn Store) {
    let c = s("c");
    store
        .apply(&[
            Change::PutSession(session("c")),
            Change::PutMessage(MessageId(1), message("t", b"x")),
            Change::Enqueue(c.clone(), delivery(1)),
            Change::Enqueue(c, delivery(1)),
        ])
        .unwrap();
    assert_eq!(
        store.load(t0()).unwrap().sessions[0].queue,
        vec![delivery(1)]
    );
}

fn ten_thousand_changes_in_one_batch(store: &dyn Store) {
    let c = s("c");
    let mut batch = vec![Change::PutSession(session("c"))];
    for id in 1..=5_000u64 {
        batch.push(Change::PutMessage(
            MessageId(id),
            message("t", b"0123456789"),
        ));
        batch.push(Change::Enqueue(c.clone(), delivery(id)));
    }
    assert_eq!(batch.len(), 10_001);
    store.apply(&batch).unwrap();
    let loaded = store.load(t0()).unwrap();
    assert_eq!(loaded.messages.len(), 5_000);
    let order: Vec<_> = loaded.sessions[0]
        .queue
        .iter()
        .map(|d| d.message.0)
        .collect();
    assert_eq!(order, (1..=5_000).collect::<Vec<_>>());
    assert_eq!(loaded.next_message_id, MessageId(5_001));

    let dequeue: Vec<_> = (1..=5_000)
        .map(|id| Change::Dequeue(c.clone(), MessageId(id)))
        .collect();
    store.apply(&dequeue).unwrap();
    let loaded = store.load(t0()).unwrap();
    assert!(loaded.messages.is_empty() && loaded.sessions[0].queue.is_empty());
}

/// Applies a state whose parts expire at different times.
fn put_expiring(store: &dyn Store) {
    let expiring = |secs| {
        let mut s = session("short");
        s.expiry = SessionExpiry::After(Duration::from_secs(secs));
        s.disconnected_at = Some(t0());
        s
    };
    let mut online = expiring(10);
    online.client_id = s("online");
    online.disconnected_at = None;
    let mut stale = message("t", b"stale");
    stale.expires_at = Some(t0() + Duration::from_secs(5));
    let keep = s("keep");
    store
        .apply(&[
            Change::PutSession(expiring(10)),
            Change::PutSession(online),
            Change::PutSession(session("keep")),
            Change::PutMessage(MessageId(1), stale),
            Change::PutMessage(MessageId(2), message("t", b"fresh")),
            Change::PutMessage(MessageId(3), message("t", b"for short")),
            Change::Enqueue(s("short"), delivery(3)),
            Change::Enqueue(keep.clone(), delivery(1)),
            Change::Enqueue(keep.clone(), delivery(2)),
            Change::PutRetained(TopicName::from_static("t"), MessageId(1)),
            Change::PutInflight(
                keep,
                StoredInflight {
                    packet_id: pid(9),
                    state: OutboundState::AwaitingPubAck,
                    delivery: delivery(1),
                },
            ),
        ])
        .unwrap();
}

fn check_expired(store: &dyn Store) {
    let loaded = store.load(t0() + Duration::from_secs(10)).unwrap();
    let clients: Vec<_> = loaded
        .sessions
        .iter()
        .map(|l| l.session.client_id.as_str().to_owned())
        .collect();
    assert_eq!(
        clients,
        ["keep", "online"],
        "the disconnected 10 s session expired"
    );
    let keep = &loaded.sessions[0];
    assert_eq!(
        keep.queue,
        vec![delivery(2)],
        "the expired queued message is dropped"
    );
    assert_eq!(
        keep.inflight.len(),
        1,
        "an expired message in flight completes its flow"
    );
    assert!(
        loaded.retained.is_empty(),
        "an expired retained message is dropped"
    );
    let ids: Vec<_> = loaded.messages.iter().map(|(id, _)| id.0).collect();
    assert_eq!(ids, [1, 2], "message 3 went with its session");
}

fn expiry_at_load(store: &dyn Store) {
    put_expiring(store);
    let early = store.load(t0() + Duration::from_secs(4)).unwrap();
    assert_eq!(early.sessions.len(), 3);
    assert_eq!(early.retained.len(), 1);
    check_expired(store);
}

/// Runs `body` on a fresh store of each engine.
fn on_both(body: fn(&dyn Store)) {
    body(&MemoryStore::new());
    let dir = tempfile::tempdir().unwrap();
    body(&SqliteStore::open(dir.path().join("store.db"), Durability::Sync).unwrap());
}

#[test]
fn every_item_round_trips() {
    on_both(round_trip_every_item);
}

#[test]
fn updates_and_removals_apply() {
    on_both(updates_and_removals);
}

#[test]
fn rows_of_a_session_not_stored_are_ignored() {
    on_both(rows_for_a_missing_session_are_ignored);
}

#[test]
fn a_message_is_queued_once_per_session() {
    on_both(enqueuing_twice_queues_once);
}

#[test]
fn a_batch_of_ten_thousand_changes_is_one_transaction() {
    on_both(ten_thousand_changes_in_one_batch);
}

#[test]
fn expired_sessions_and_messages_are_skipped_at_load() {
    on_both(expiry_at_load);
}

#[test]
fn the_engines_agree() {
    let memory = MemoryStore::new();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("store.db"), Durability::Off).unwrap();
    for store in [&memory as &dyn Store, &sqlite] {
        put_expiring(store);
        store.apply(&everything().0).unwrap();
    }
    let now = t0() + Duration::from_secs(10);
    assert_eq!(memory.load(now).unwrap(), sqlite.load(now).unwrap());
}

#[test]
fn a_restart_restores_everything() {
    for durability in [
        Durability::Sync,
        Durability::Periodic(Duration::from_millis(100)),
        Durability::Off,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("store.db");
        let (batch, expected) = everything();
        {
            let store = SqliteStore::open(&path, durability).unwrap();
            store.apply(&batch).unwrap();
            store.sync().unwrap();
        }
        let store = SqliteStore::open(&path, durability).unwrap();
        assert_eq!(store.load(t0()).unwrap(), expected, "{durability:?}");
    }
}

#[test]
fn expiry_applies_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    put_expiring(&SqliteStore::open(&path, Durability::Sync).unwrap());
    check_expired(&SqliteStore::open(&path, Durability::Sync).unwrap());
    // What expired was deleted, not only skipped.
    let again = SqliteStore::open(&path, Durability::Sync).unwrap();
    assert_eq!(again.load(t0()).unwrap().sessions.len(), 2);
}

fn assert_names(err: &StoreError, path: &Path) {
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_file_of_garbage_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    std::fs::write(&path, vec![0xA5; 64 * 1024]).unwrap();
    let err = SqliteStore::open(&path, Durability::Sync).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &path);
    assert!(err.to_string().contains("not a database"), "{err}");
}

#[test]
fn a_store_overwritten_with_garbage_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = SqliteStore::open(&path, Durability::Sync).unwrap();
        store.apply(&everything().0).unwrap();
    }
    // Power-loss style damage: the first pages replaced by zeros, then noise.
    let mut bytes = std::fs::read(&path).unwrap();
    let damaged = bytes.len().min(8_192);
    for (i, b) in bytes[..damaged].iter_mut().enumerate() {
        *b = if i < 100 { 0 } else { (i * 7) as u8 };
    }
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("store.db-wal"));
    let err = SqliteStore::open(&path, Durability::Sync)
        .and_then(|store| store.load(t0()).map(drop))
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert_names(&err, &path);
}

#[test]
fn another_sqlite_database_is_not_taken_for_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let err = SqliteStore::open(&path, Durability::Off).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("not a Starling store"), "{err}");
    assert_names(&err, &path);
}

#[test]
fn a_directory_in_place_of_the_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteStore::open(dir.path(), Durability::Off).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_names(&err, dir.path());
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_is_refused_with_its_path() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes through mode bits; /sys refuses new files to everyone.
    let ro = if std::fs::write(ro.join("probe"), b"").is_ok() {
        Path::new("/sys").to_path_buf()
    } else {
        ro
    };
    let path = ro.join("store.db");
    let err = SqliteStore::open(&path, Durability::Sync).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert_names(&err, &path);
    // A data directory that cannot be created is refused the same way.
    let nested = ro.join("data").join("store.db");
    let err = SqliteStore::open(&nested, Durability::Sync).unwrap_err();
    assert_names(&err, &nested);
}
