//! `SqliteStore`: the on-disk [`Store`]. SQLite (compiled in, through rusqlite)
//! in WAL mode: a batch is one transaction appended to the write-ahead log, so
//! a crash at any moment leaves either the whole batch or none of it.
//!
//! - [`Durability::Sync`]: `synchronous=FULL`, the WAL is fsynced at every
//!   commit, that is once per [`Store::apply`].
//! - [`Durability::Periodic`]: `synchronous=NORMAL`, commits are not fsynced;
//!   [`Store::sync`] checkpoints, which fsyncs the WAL and the database.
//! - [`Durability::Off`]: `synchronous=OFF`, no fsync at all.
//!
//! The file is locked for the life of the store (`locking_mode=EXCLUSIVE`): a
//! second broker on the same data fails to open it instead of sharing it.
//! Times are stored as milliseconds since the Unix epoch, durations as
//! milliseconds.
//!
//! Schema (version 2; `schema_version` holds it; a version 1 store is
//! brought to 2 when opened):
//! ```text
//! messages       id PK, topic, payload, qos, retain, properties (blob.rs), expires_at,
//!                source_client_id, source_username, source_listener (v2: a retained
//!                message's publisher, for check_retain_source)
//! retained       topic PK, message_id
//! sessions       client_id PK, expiry (NULL: never), disconnected_at,
//!                will_topic, will_payload, will_qos, will_retain, will_properties, will_delay
//! subscriptions  (client_id, filter) PK, position, options (the v5 byte), subscription_id
//! queue          seq PK, client_id, message_id, qos, retain, subscription_ids, shared;
//!                UNIQUE (client_id, message_id)
//! inflight       seq PK, client_id, packet_id, state, message_id, qos, retain,
//!                subscription_ids, shared; UNIQUE (client_id, packet_id)
//! incoming_qos2  (client_id, packet_id) PK
//! ```
//! `retained`, `queue` and `inflight` are indexed by `message_id`, so deleting a
//! message with its last reference is three index probes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction};
use starling_proto::{
    MqttString, PacketId, ProtocolVersion, QoS, RetainHandling, SubscriptionId,
    SubscriptionOptions, TopicFilter, TopicName,
};

use super::blob;
use super::{
    Change, Durability, LoadedSession, MessageId, SessionExpiry, Snapshot, Store, StoreError,
    StoredDelivery, StoredInflight, StoredMessage, StoredSession, StoredWill,
};
use crate::router::Subscription;
use crate::session::OutboundState;

const SCHEMA_VERSION: i64 = 2;

/// From version 1 to 2: the publisher of a retained message.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE messages ADD COLUMN source_client_id TEXT;
ALTER TABLE messages ADD COLUMN source_username TEXT;
ALTER TABLE messages ADD COLUMN source_listener TEXT;
UPDATE schema_version SET version = 2;
";

const SCHEMA: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    properties BLOB NOT NULL,
    expires_at INTEGER,
    source_client_id TEXT,
    source_username TEXT,
    source_listener TEXT
);
CREATE TABLE retained (
    topic TEXT PRIMARY KEY,
    message_id INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX retained_message ON retained (message_id);
CREATE TABLE sessions (
    client_id TEXT PRIMARY KEY,
    expiry INTEGER,
    disconnected_at INTEGER,
    will_topic TEXT,
    will_payload BLOB,
    will_qos INTEGER,
    will_retain INTEGER,
    will_properties BLOB,
    will_delay INTEGER
) WITHOUT ROWID;
CREATE TABLE subscriptions (
    client_id TEXT NOT NULL,
    filter TEXT NOT NULL,
    position INTEGER NOT NULL,
    options INTEGER NOT NULL,
    subscription_id INTEGER,
    PRIMARY KEY (client_id, filter)
) WITHOUT ROWID;
CREATE TABLE queue (
    seq INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    subscription_ids BLOB NOT NULL,
    shared TEXT,
    UNIQUE (client_id, message_id)
);
CREATE INDEX queue_message ON queue (message_id);
CREATE TABLE inflight (
    seq INTEGER PRIMARY KEY,
    client_id TEXT NOT NULL,
    packet_id INTEGER NOT NULL,
    state INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    subscription_ids BLOB NOT NULL,
    shared TEXT,
    UNIQUE (client_id, packet_id)
);
CREATE INDEX inflight_message ON inflight (message_id);
CREATE TABLE incoming_qos2 (
    client_id TEXT NOT NULL,
    packet_id INTEGER NOT NULL,
    PRIMARY KEY (client_id, packet_id)
) WITHOUT ROWID;
";

/// Deletes a message that no row refers to any more.
const COLLECT: &str = "DELETE FROM messages WHERE id = ?1
    AND NOT EXISTS (SELECT 1 FROM queue WHERE message_id = ?1)
    AND NOT EXISTS (SELECT 1 FROM inflight WHERE message_id = ?1)
    AND NOT EXISTS (SELECT 1 FROM retained WHERE message_id = ?1)";

/// A retained message's publisher from its columns; `None` without a client
/// id or with a listener address that does not parse.
fn publisher(
    client_id: Option<String>,
    username: Option<String>,
    listener: Option<String>,
) -> Option<crate::message::Publisher> {
    Some(crate::message::Publisher {
        client_id: client_id?,
        username,
        listener: listener?.parse().ok()?,
    })
}

/// The SQLite engine.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    durability: Durability,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens the store in the file `path`, creating it (and its directory) if
    /// missing. Fails with the path and the reason if the file cannot be
    /// opened, is not a Starling store, is damaged, or is held by another
    /// broker.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |reason: String| StoreError::Open {
            path: path.clone(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(|e| opening(&path, &e))?;
        let synchronous = match durability {
            Durability::Sync => "FULL",
            Durability::Periodic(_) => "NORMAL",
            Durability::Off => "OFF",
        };
        let setup = |conn: &mut Connection| -> rusqlite::Result<Result<Option<i64>, String>> {
            // The lock is held for the store's life: waiting for it is pointless.
            conn.busy_timeout(Duration::ZERO)?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Ok(Err(format!("cannot use WAL mode (journal mode {mode})")));
            }
            conn.pragma_update(None, "synchronous", synchronous)?;
            // A burst can grow the log; after a checkpoint it shrinks back to this.
            conn.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let tables: i64 =
                tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
            if tables == 0 {
                tx.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
                tx.execute_batch(SCHEMA)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            let mut version = tx
                .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
                .optional();
            if matches!(version, Ok(Some(1))) {
                tx.execute_batch(MIGRATE_1_TO_2)?;
                version = Ok(Some(2));
            }
            tx.commit()?;
            match version {
                Ok(version) => Ok(Ok(version)),
                Err(rusqlite::Error::SqliteFailure(_, Some(msg)))
                    if msg.contains("no such table") =>
                {
                    Ok(Ok(None))
                }
                Err(e) => Err(e),
            }
        };
        match setup(&mut conn) {
            Ok(Ok(Some(SCHEMA_VERSION))) => {}
            Ok(Err(reason)) => return Err(open_error(reason)),
            Ok(Ok(Some(found))) => {
                return Err(StoreError::Version {
                    path,
                    found,
                    expected: SCHEMA_VERSION,
                })
            }
            Ok(Ok(None)) => {
                return Err(StoreError::Corrupt {
                    path,
                    reason: "an SQLite database, but not a Starling store (no schema_version)"
                        .to_owned(),
                })
            }
            Err(e) => return Err(opening(&path, &e)),
        }
        // Every statement `write` prepares stays prepared.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            path,
            durability,
            conn: Mutex::new(conn),
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability it was opened with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    fn failed(&self, e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full {
                path: self.path.clone(),
            },
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                path: self.path.clone(),
                reason: e.to_string(),
            },
            _ => StoreError::Io {
                path: self.path.clone(),
                reason: e.to_string(),
            },
        }
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

/// An error while opening, with the path.
fn opening(path: &Path, e: &rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        Some(ErrorCode::DatabaseBusy) => StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("{e} (is another broker using it?)"),
        },
        _ => StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    }
}

impl Store for SqliteStore {
    fn apply(&self, batch: &[Change]) -> Result<(), StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.failed(e))?;
        let mut unreferenced = BTreeSet::new();
        for change in batch {
            write(&tx, change, &mut unreferenced).map_err(|e| self.failed(e))?;
        }
        let result = (|| {
            let mut collect = tx.prepare_cached(COLLECT)?;
            for id in unreferenced {
                collect.execute([id])?;
            }
            drop(collect);
            tx.commit()
        })();
        result.map_err(|e| self.failed(e))
    }

    fn sync(&self) -> Result<(), StoreError> {
        if let Durability::Periodic(_) = self.durability {
            let conn = self.conn.lock();
            // A checkpoint fsyncs the WAL, copies it into the database and
            // fsyncs that; with one connection it always completes.
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock();
        // auto_vacuum=INCREMENTAL: free pages go back to the file system here,
        // not at every commit.
        conn.execute_batch("PRAGMA incremental_vacuum;")
            .map_err(|e| self.failed(e))
    }

    fn size(&self) -> Option<u64> {
        let len = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let wal = PathBuf::from(format!("{}-wal", self.path.display()));
        Some(len(&self.path) + len(&wal))
    }

    fn load(&self, now: SystemTime) -> Result<Snapshot, StoreError> {
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.failed(e))?;
        let reading = |e| match e {
            ReadError::Sql(e) => self.failed(e),
            ReadError::Invalid(reason) => self.corrupt(reason),
        };
        let expired_wills = expired_wills(&tx, millis(now)).map_err(reading)?;
        expire(&tx, millis(now)).map_err(|e| self.failed(e))?;
        let mut snapshot = read(&tx).map_err(reading)?;
        snapshot.expired_wills = expired_wills;
        tx.commit().map_err(|e| self.failed(e))?;
        Ok(snapshot)
    }
}

fn write(
    tx: &Transaction<'_>,
    change: &Change,
    unreferenced: &mut BTreeSet<i64>,
) -> rusqlite::Result<()> {
    match change {
        Change::PutMessage(id, m) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO messages
                 (id, topic, payload, qos, retain, properties, expires_at,
                  source_client_id, source_username, source_listener)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                id.0 as i64,
                m.topic.as_str(),
                &m.payload[..],
                m.qos.as_u8(),
                m.retain,
                blob::encode_properties(&m.properties),
                m.expires_at.map(millis),
                m.publisher.as_ref().map(|p| p.client_id.as_str()),
                m.publisher.as_ref().and_then(|p| p.username.as_deref()),
                m.publisher.as_ref().map(|p| p.listener.to_string()),
            ])?;
            // Not a candidate for collection: the change that refers to it
            // follows in the same batch (`Change::PutMessage`), and checking
            // every new message would cost three index probes each.
        }
        Change::PutRetained(topic, id) => {
            let old: Option<i64> = tx
                .prepare_cached("SELECT message_id FROM retained WHERE topic = ?1")?
                .query_row([topic.as_str()], |r| r.get(0))
                .optional()?;
            unreferenced.extend(old);
            tx.prepare_cached(
                "INSERT OR REPLACE INTO retained (topic, message_id) VALUES (?1, ?2)",
            )?
            .execute(params![topic.as_str(), id.0 as i64])?;
        }
        Change::RemoveRetained(topic) => {
            let old: Option<i64> = tx
                .prepare_cached("DELETE FROM retained WHERE topic = ?1 RETURNING message_id")?
                .query_row([topic.as_str()], |r| r.get(0))
                .optional()?;
            unreferenced.extend(old);
        }
        Change::PutSession(s) => put_session(tx, s)?,
        Change::RemoveSession(client) => {
            let client = client.as_str();
            let mut refs = tx.prepare_cached(
                "SELECT message_id FROM queue WHERE client_id = ?1
                 UNION SELECT message_id FROM inflight WHERE client_id = ?1",
            )?;
            let ids = refs.query_map([client], |r| r.get::<_, i64>(0))?;
            for id in ids {
                unreferenced.insert(id?);
            }
            for table in [
                "sessions",
                "subscriptions",
                "queue",
                "inflight",
                "incoming_qos2",
            ] {
                tx.prepare_cached(&format!("DELETE FROM {table} WHERE client_id = ?1"))?
                    .execute([client])?;
            }
        }
        Change::Enqueue(client, d) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO queue
                 (client_id, message_id, qos, retain, subscription_ids, shared)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE EXISTS (SELECT 1 FROM sessions WHERE client_id = ?1)",
            )?
            .execute(params![
                client.as_str(),
                d.message.0 as i64,
                d.qos.as_u8(),
                d.retain,
                blob::encode_subscription_ids(&d.subscription_ids),
                d.shared.as_ref().map(TopicFilter::as_str),
            ])?;
        }
        Change::Dequeue(client, id) => {
            tx.prepare_cached("DELETE FROM queue WHERE client_id = ?1 AND message_id = ?2")?
                .execute(params![client.as_str(), id.0 as i64])?;
            unreferenced.insert(id.0 as i64);
        }
        Change::PutInflight(client, i) => {
            let old: Option<i64> = tx
                .prepare_cached(
                    "SELECT message_id FROM inflight WHERE client_id = ?1 AND packet_id = ?2",
                )?
                .query_row(params![client.as_str(), i.packet_id.get()], |r| r.get(0))
                .optional()?;
            unreferenced.extend(old);
            let d = &i.delivery;
            tx.prepare_cached(
                "INSERT INTO inflight
                 (client_id, packet_id, state, message_id, qos, retain, subscription_ids, shared)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
                 WHERE EXISTS (SELECT 1 FROM sessions WHERE client_id = ?1)
                 ON CONFLICT (client_id, packet_id) DO UPDATE SET
                 state = excluded.state, message_id = excluded.message_id, qos = excluded.qos,
                 retain = excluded.retain, subscription_ids = excluded.subscription_ids,
                 shared = excluded.shared",
            )?
            .execute(params![
                client.as_str(),
                i.packet_id.get(),
                state_code(i.state),
                d.message.0 as i64,
                d.qos.as_u8(),
                d.retain,
                blob::encode_subscription_ids(&d.subscription_ids),
                d.shared.as_ref().map(TopicFilter::as_str),
            ])?;
        }
        Change::RemoveInflight(client, packet_id) => {
            let old: Option<i64> = tx
                .prepare_cached(
                    "DELETE FROM inflight WHERE client_id = ?1 AND packet_id = ?2
                     RETURNING message_id",
                )?
                .query_row(params![client.as_str(), packet_id.get()], |r| r.get(0))
                .optional()?;
            unreferenced.extend(old);
        }
        Change::PutIncomingQos2(client, packet_id) => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO incoming_qos2 (client_id, packet_id)
                 SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM sessions WHERE client_id = ?1)",
            )?
            .execute(params![client.as_str(), packet_id.get()])?;
        }
        Change::RemoveIncomingQos2(client, packet_id) => {
            tx.prepare_cached("DELETE FROM incoming_qos2 WHERE client_id = ?1 AND packet_id = ?2")?
                .execute(params![client.as_str(), packet_id.get()])?;
        }
    }
    Ok(())
}

fn put_session(tx: &Transaction<'_>, s: &StoredSession) -> rusqlite::Result<()> {
    let client = s.client_id.as_str();
    let expiry = match s.expiry {
        SessionExpiry::Never => None,
        SessionExpiry::After(after) => Some(duration_millis(after)),
    };
    let will = s.will.as_ref();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO sessions (client_id, expiry, disconnected_at, will_topic,
         will_payload, will_qos, will_retain, will_properties, will_delay)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        client,
        expiry,
        s.disconnected_at.map(millis),
        will.map(|w| w.topic.as_str()),
        will.map(|w| &w.payload[..]),
        will.map(|w| w.qos.as_u8()),
        will.map(|w| w.retain),
        will.map(|w| blob::encode_properties(&w.properties)),
        will.map(|w| duration_millis(w.delay)),
    ])?;
    tx.prepare_cached("DELETE FROM subscriptions WHERE client_id = ?1")?
        .execute([client])?;
    let mut insert = tx.prepare_cached(
        "INSERT OR REPLACE INTO subscriptions
         (client_id, filter, position, options, subscription_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, (filter, sub)) in s.subscriptions.iter().enumerate() {
        insert.execute(params![
            client,
            filter.as_str(),
            position as i64,
            sub.options.to_byte(ProtocolVersion::V5),
            sub.id.map(SubscriptionId::get),
        ])?;
    }
    Ok(())
}

/// Deletes what expired while the broker was down: sessions past their expiry,
/// queued and retained messages past their Message Expiry, and messages
/// nothing refers to. In-flight messages stay: their flow was started and is
/// completed whatever their expiry.
/// The will in columns `first..first + 6` of a `sessions` row (topic, payload,
/// QoS, retain, properties, delay), if it has one.
fn will(r: &Row<'_>, client: &str, first: usize) -> Result<Option<StoredWill>, ReadError> {
    let Some(topic) = r.get::<_, Option<String>>(first)? else {
        return Ok(None);
    };
    Ok(Some(StoredWill {
        topic: topic_name(topic)?,
        payload: Bytes::from(r.get::<_, Vec<u8>>(first + 1)?),
        qos: qos(r.get(first + 2)?)?,
        retain: r.get(first + 3)?,
        properties: blob::decode_properties(&r.get::<_, Vec<u8>>(first + 4)?)
            .map_err(|e| ReadError::Invalid(format!("will of {client}: {e}")))?,
        delay: duration(r.get(first + 5)?),
    }))
}

/// The wills of the sessions that expired at `now` (they were due by then).
fn expired_wills(tx: &Transaction<'_>, now: i64) -> Result<Vec<StoredWill>, ReadError> {
    let mut stmt = tx.prepare(
        "SELECT client_id, will_topic, will_payload, will_qos, will_retain, will_properties,
         will_delay FROM sessions WHERE will_topic IS NOT NULL AND expiry IS NOT NULL
         AND disconnected_at IS NOT NULL AND disconnected_at + expiry <= ?1",
    )?;
    let mut rows = stmt.query([now])?;
    let mut wills = Vec::new();
    while let Some(r) = rows.next()? {
        let client: String = r.get(0)?;
        wills.extend(will(r, &client, 1)?);
    }
    Ok(wills)
}

fn expire(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM sessions WHERE expiry IS NOT NULL AND disconnected_at IS NOT NULL
         AND disconnected_at + expiry <= ?1",
        [now],
    )?;
    for table in ["subscriptions", "queue", "inflight", "incoming_qos2"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE client_id NOT IN (SELECT client_id FROM sessions)"),
            [],
        )?;
    }
    for table in ["queue", "retained"] {
        tx.execute(
            &format!(
                "DELETE FROM {table} WHERE message_id IN
                 (SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1)"
            ),
            [now],
        )?;
    }
    tx.execute(
        "DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM queue
         UNION SELECT message_id FROM inflight UNION SELECT message_id FROM retained)",
        [],
    )?;
    Ok(())
}

enum ReadError {
    Sql(rusqlite::Error),
    Invalid(String),
}

impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Sql(e)
    }
}

fn read(tx: &Transaction<'_>) -> Result<Snapshot, ReadError> {
    let mut snapshot = Snapshot::default();
    let mut stmt = tx.prepare(
        "SELECT id, topic, payload, qos, retain, properties, expires_at,
                source_client_id, source_username, source_listener
         FROM messages ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id = MessageId(r.get::<_, i64>(0)? as u64);
        let message = StoredMessage {
            topic: topic_name(r.get(1)?)?,
            payload: Bytes::from(r.get::<_, Vec<u8>>(2)?),
            qos: qos(r.get(3)?)?,
            retain: r.get(4)?,
            properties: blob::decode_properties(&r.get::<_, Vec<u8>>(5)?)
                .map_err(|e| ReadError::Invalid(format!("message {}: {e}", id.0)))?,
            expires_at: r.get::<_, Option<i64>>(6)?.map(time),
            publisher: publisher(r.get(7)?, r.get(8)?, r.get(9)?),
        };
        snapshot.next_message_id = MessageId(id.0 + 1);
        snapshot.messages.push((id, message));
    }

    let mut stmt = tx.prepare("SELECT topic, message_id FROM retained ORDER BY topic")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id = MessageId(r.get::<_, i64>(1)? as u64);
        snapshot.retained.push((topic_name(r.get(0)?)?, id));
    }

    let mut sessions = BTreeMap::new();
    let mut stmt = tx.prepare(
        "SELECT client_id, expiry, disconnected_at, will_topic, will_payload, will_qos,
         will_retain, will_properties, will_delay FROM sessions",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let client: String = r.get(0)?;
        let will = will(r, &client, 3)?;
        let session = StoredSession {
            client_id: mqtt_string(client.clone())?,
            expiry: match r.get::<_, Option<i64>>(1)? {
                None => SessionExpiry::Never,
                Some(ms) => SessionExpiry::After(duration(ms)),
            },
            disconnected_at: r.get::<_, Option<i64>>(2)?.map(time),
            will,
            subscriptions: Vec::new(),
        };
        let loaded = LoadedSession {
            session,
            queue: Vec::new(),
            inflight: Vec::new(),
            incoming_qos2: Vec::new(),
        };
        sessions.insert(client, loaded);
    }

    let mut stmt = tx.prepare(
        "SELECT client_id, filter, options, subscription_id FROM subscriptions
         ORDER BY client_id, position",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let entry = session_of(&mut sessions, r)?;
        let filter: String = r.get(1)?;
        let filter = TopicFilter::try_from(filter.as_str())
            .map_err(|e| ReadError::Invalid(format!("filter {filter:?}: {e}")))?;
        let subscription =
            Subscription {
                options: options(r.get(2)?)?,
                id: match r.get::<_, Option<u32>>(3)? {
                    None => None,
                    Some(id) => Some(SubscriptionId::new(id).ok_or_else(|| {
                        ReadError::Invalid(format!("subscription identifier {id}"))
                    })?),
                },
            };
        entry.session.subscriptions.push((filter, subscription));
    }

    let mut stmt = tx.prepare(
        "SELECT client_id, message_id, qos, retain, subscription_ids, shared
         FROM queue ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let delivery = delivery(r, 1)?;
        session_of(&mut sessions, r)?.queue.push(delivery);
    }

    let mut stmt = tx.prepare(
        "SELECT client_id, message_id, qos, retain, subscription_ids, shared, packet_id, state
         FROM inflight ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let inflight = StoredInflight {
            packet_id: packet_id(r.get(6)?)?,
            state: state(r.get(7)?)?,
            delivery: delivery(r, 1)?,
        };
        session_of(&mut sessions, r)?.inflight.push(inflight);
    }

    let mut stmt =
        tx.prepare("SELECT client_id, packet_id FROM incoming_qos2 ORDER BY client_id, packet_id")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id = packet_id(r.get(1)?)?;
        session_of(&mut sessions, r)?.incoming_qos2.push(id);
    }

    snapshot.sessions = sessions.into_values().collect();
    Ok(snapshot)
}

fn session_of<'a>(
    sessions: &'a mut BTreeMap<String, LoadedSession>,
    r: &Row<'_>,
) -> Result<&'a mut LoadedSession, ReadError> {
    let client: String = r.get(0)?;
    sessions
        .get_mut(&client)
        .ok_or_else(|| ReadError::Invalid(format!("a row for session {client:?}, not stored")))
}

/// The delivery in columns `first..first + 5`.
fn delivery(r: &Row<'_>, first: usize) -> Result<StoredDelivery, ReadError> {
    Ok(StoredDelivery {
        message: MessageId(r.get::<_, i64>(first)? as u64),
        qos: qos(r.get(first + 1)?)?,
        retain: r.get(first + 2)?,
        subscription_ids: blob::decode_subscription_ids(&r.get::<_, Vec<u8>>(first + 3)?)
            .map_err(ReadError::Invalid)?,
        shared: match r.get::<_, Option<String>>(first + 4)? {
            None => None,
            Some(f) => Some(
                TopicFilter::try_from(f.as_str())
                    .map_err(|e| ReadError::Invalid(format!("filter {f:?}: {e}")))?,
            ),
        },
    })
}

fn state_code(state: OutboundState) -> u8 {
    match state {
        OutboundState::AwaitingPubAck => 1,
        OutboundState::AwaitingPubRec => 2,
        OutboundState::AwaitingPubComp => 3,
    }
}

fn state(code: u8) -> Result<OutboundState, ReadError> {
    match code {
        1 => Ok(OutboundState::AwaitingPubAck),
        2 => Ok(OutboundState::AwaitingPubRec),
        3 => Ok(OutboundState::AwaitingPubComp),
        _ => Err(ReadError::Invalid(format!("in-flight state {code}"))),
    }
}

fn options(byte: u8) -> Result<SubscriptionOptions, ReadError> {
    let invalid = || ReadError::Invalid(format!("subscription options {byte:#04x}"));
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendAtSubscribeIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(invalid()),
    };
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(byte & 0x03).ok_or_else(invalid)?,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

fn qos(bits: u8) -> Result<QoS, ReadError> {
    QoS::from_u8(bits).ok_or_else(|| ReadError::Invalid(format!("QoS {bits}")))
}

fn packet_id(id: u16) -> Result<PacketId, ReadError> {
    PacketId::new(id).ok_or_else(|| ReadError::Invalid("packet identifier 0".to_owned()))
}

fn mqtt_string(s: String) -> Result<MqttString, ReadError> {
    MqttString::try_from(s).map_err(|e| ReadError::Invalid(format!("client id: {e:?}")))
}

fn topic_name(s: String) -> Result<TopicName, ReadError> {
    TopicName::try_from(s.as_str()).map_err(|e| ReadError::Invalid(format!("topic {s:?}: {e}")))
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => duration_millis(d),
        Err(e) => -duration_millis(e.duration()),
    }
}

fn time(ms: i64) -> SystemTime {
    let d = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0).unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::{delivery, message, session};

    #[test]
    fn a_new_store_has_the_schema_version_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db"), Durability::Sync).unwrap();
        let conn = store.conn.lock();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
        let version: i64 = conn
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn each_durability_sets_its_synchronous_mode() {
        let dir = tempfile::tempdir().unwrap();
        for (durability, expected) in [
            (Durability::Sync, 2),
            (Durability::Periodic(Duration::from_secs(1)), 1),
            (Durability::Off, 0),
        ] {
            let store = SqliteStore::open(dir.path().join("s.db"), durability).unwrap();
            let conn = store.conn.lock();
            let sync: i64 = conn
                .query_row("PRAGMA synchronous", [], |r| r.get(0))
                .unwrap();
            assert_eq!(sync, expected, "{durability:?}");
        }
    }

    #[test]
    fn another_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path, Durability::Off).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE schema_version SET version = 99", [])
            .unwrap();
        let err = SqliteStore::open(&path, Durability::Off).unwrap_err();
        assert!(
            matches!(err, StoreError::Version { found: 99, .. }),
            "{err}"
        );
    }

    /// A version 1 store (before the publisher columns) is brought to
    /// version 2 when opened, its messages kept; a retained message's
    /// publisher then survives a restart.
    #[test]
    fn a_version_1_store_is_migrated_and_publishers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            let v1 = SCHEMA.replace(
                "expires_at INTEGER,\n    source_client_id TEXT,\n    source_username TEXT,\n    source_listener TEXT\n",
                "expires_at INTEGER\n",
            );
            assert_ne!(v1, SCHEMA, "the version 1 messages table");
            conn.execute_batch(&v1).unwrap();
            conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])
                .unwrap();
            conn.execute(
                "INSERT INTO messages (id, topic, payload, qos, retain, properties, expires_at)
                 VALUES (1, 'old/topic', x'6869', 1, 1, x'', NULL)",
                [],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO retained (topic, message_id) VALUES ('old/topic', 1)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, Durability::Sync).unwrap();
        let publisher = crate::message::Publisher {
            client_id: "sensor-1".into(),
            username: Some("alice".into()),
            listener: "127.0.0.1:1883".parse().unwrap(),
        };
        let mut kept = message("new/topic", None);
        kept.publisher = Some(publisher.clone());
        store
            .apply(&[
                Change::PutMessage(MessageId(2), kept),
                Change::PutRetained(TopicName::from_static("new/topic"), MessageId(2)),
            ])
            .unwrap();
        drop(store);
        let store = SqliteStore::open(&path, Durability::Sync).unwrap();
        let version: i64 = store
            .conn
            .lock()
            .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 2);
        let snapshot = store.load(SystemTime::now()).unwrap();
        let by_id: BTreeMap<u64, &StoredMessage> =
            snapshot.messages.iter().map(|(id, m)| (id.0, m)).collect();
        assert_eq!(by_id[&1].topic.as_str(), "old/topic");
        assert_eq!(by_id[&1].publisher, None);
        assert_eq!(by_id[&2].publisher, Some(publisher));
    }

    #[test]
    fn a_second_broker_cannot_open_a_store_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let _first = SqliteStore::open(&path, Durability::Off).unwrap();
        let err = SqliteStore::open(&path, Durability::Off).unwrap_err();
        assert!(err.to_string().contains("s.db"), "{err}");
    }

    #[test]
    fn a_failed_batch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("s.db"), Durability::Off).unwrap();
        store
            .conn
            .lock()
            .execute_batch("CREATE TRIGGER no_dequeue BEFORE DELETE ON queue BEGIN SELECT RAISE(ABORT, 'refused'); END")
            .unwrap();
        let id = MessageId(1);
        let c = MqttString::from_static("c");
        store
            .apply(&[
                Change::PutSession(session("c")),
                Change::PutMessage(id, message("t", None)),
                Change::Enqueue(c.clone(), delivery(id)),
            ])
            .unwrap();
        let before = store.load(SystemTime::now()).unwrap();
        let err = store
            .apply(&[
                Change::RemoveRetained(TopicName::from_static("x")),
                Change::Dequeue(c, id),
            ])
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
        assert_eq!(store.load(SystemTime::now()).unwrap(), before);
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        for ms in [0, 1, 1_700_000_000_123, -5] {
            assert_eq!(millis(time(ms)), ms);
        }
    }
}
