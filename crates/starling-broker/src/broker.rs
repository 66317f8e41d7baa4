//! `Broker`: the state every connection shares. The subscription trie and the
//! retained store are behind read-write locks taken only for the duration of a
//! synchronous call (never across an `.await`); each session's state has its
//! own mutex, so publishers on different cores contend only when they deliver
//! to the same subscriber. The session registry is touched only on connect and
//! disconnect.
//!
//! This file owns session lifecycles: attach (with takeover), detach, Will
//! Delay, Session Expiry, and routing a message to the sessions that match.
//!
//! With storage on, it also decides what the store keeps: persistent sessions
//! (their record, written at attach, subscribe, unsubscribe and detach) and
//! retained messages; a session's queue and in-flight changes reach the store
//! through [`StateGuard`], the only way to change a [`SessionState`] that
//! records them. At start-up [`Broker::with_store`] rebuilds all of it from
//! the store before any listener accepts a client.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Mutex, MutexGuard, RwLock};
use starling_proto::{MqttString, QoS, ReasonCode, TopicFilter};
use tokio::sync::Notify;

use crate::auth::{Auth, AuthState};
use crate::config::{Config, ConfigProblem, ConfigReport};
use crate::message::{Delivery, Message, SessionId};
use crate::retained::RetainedStore;
use crate::router::{Router, Subscription};
use crate::session::{Enqueued, QueueLimits, SessionRecord, SessionState};
use crate::stats::Stats;
use crate::storage::{
    Clock, MessageId, Op, Persistence, SessionExpiry, Snapshot, Store, StoredSession, StoredWill,
};

/// How long a takeover waits for the old connection to finish.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// One session, shared by the broker and the connection attached to it.
#[derive(Debug)]
pub struct SessionHandle {
    /// Unique for the broker's lifetime; a new session of the same client id
    /// gets a new one.
    pub id: SessionId,
    /// The client identifier.
    pub client_id: MqttString,
    /// The session state. Private: changed only through [`Broker::state`], so
    /// that what it records for the store always reaches the store.
    state: Mutex<SessionState>,
    /// The generation of the connection a takeover ends (0: none).
    kicked: AtomicU64,
    /// The generation of the connection whose keep alive ran out (0: none;
    /// [`crate::keepalive`]).
    timed_out: AtomicU64,
    /// When its connection last read, in ticks of [`crate::keepalive::TICK`].
    last_read: AtomicU32,
    /// Where the keep alive wheel holds its connection (changed under the
    /// wheel's lock).
    due: AtomicU32,
    /// How many of its subscriptions the router holds outside shared groups.
    /// Changed only under the router's write lock, so a publisher holding the
    /// read lock sees how many times the session can match: once at most, and
    /// its delivery needs no merging with another.
    routes: AtomicUsize,
    /// The generation of the last connection that finished (0: none), so a
    /// takeover can wait for the one it ends.
    finished: AtomicU64,
    /// Attaches, takeovers, the pending will: one lock, as they are all
    /// rare (a lock each was 48 bytes more in every session).
    lifecycle: Mutex<Lifecycle>,
}

/// What attaches to an existing session share.
#[derive(Debug, Default)]
struct Takeover {
    /// Serialises them.
    lock: tokio::sync::Mutex<()>,
    /// Woken when a connection of the session finishes.
    finished: Notify,
}

#[derive(Debug, Default)]
struct Lifecycle {
    /// Bumped at every attach, so timers armed at a detach can tell whether the
    /// session has been resumed since.
    generation: u64,
    /// Boxed: few sessions have one, and every session holds this field.
    pending_will: Option<Box<Message>>,
    /// Made by the first attach to an existing session: most sessions never
    /// have one.
    attaching: Option<Arc<Takeover>>,
    /// Whether the connection of `generation` is attached and not yet taken
    /// over.
    owned: bool,
    ended: bool,
}

/// The bit of [`SessionHandle::kicked`] that says the takeover starts a new
/// session: one field rather than two, in every session.
const KICKED_BY_CLEAN_START: u64 = 1 << 63;

impl SessionHandle {
    /// Whether the connection of `generation` has been taken over.
    pub fn kicked(&self, generation: u64) -> bool {
        self.kicked.load(Ordering::Acquire) & !KICKED_BY_CLEAN_START == generation
    }

    /// Whether the connection of `generation` was taken over by one that
    /// continues its session (no clean start): its will is then not
    /// published, as in Mosquitto [MQTT-3.1.3-9].
    pub fn taken_over_by_resume(&self, generation: u64) -> bool {
        let kicked = self.kicked.load(Ordering::Acquire);
        kicked == generation && kicked & KICKED_BY_CLEAN_START == 0
    }

    /// Wakes the attached connection, or, if it is not waiting, makes its
    /// next wait end at once: a message was queued, it was taken over
    /// ([`Self::kicked`]), its keep alive ran out, the server is shutting down
    /// or the password and ACL files were reloaded ([`Broker::wake_sessions`]).
    /// One wake-up for every reason, whose waker the session's state holds:
    /// waiting costs an idle connection's task no state of its own (a tokio
    /// `Notified` is 64 bytes). The connection reads why from the flags.
    pub fn wake(&self) {
        let waker = self.state.lock().wake();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Waits for the next [`Self::wake`] (or the last one, if the attached
    /// connection has not seen it yet). Cancel-safe: a wake-up that comes
    /// while it is not polled is kept for the next wait.
    pub fn woken(&self) -> impl std::future::Future<Output = ()> + '_ {
        std::future::poll_fn(|cx| self.poll_woken(cx))
    }

    /// Whether [`Self::wake`] was called since the attached connection last
    /// looked; if not, `cx` is woken at the next.
    pub fn poll_woken(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.state.lock().poll_woken(cx)
    }

    /// Forgets the waker of the connection of `generation`, which ends,
    /// unless a takeover ended it (the next connection's waker may be there).
    pub fn forget_waiter(&self, generation: u64) {
        if !self.kicked(generation) {
            self.state.lock().forget_waiter();
        }
    }

    /// Records a read of its connection at keep alive tick `tick`.
    pub fn touch(&self, tick: u32) {
        self.last_read.store(tick, Ordering::Relaxed);
    }

    /// The keep alive tick of its connection's last read.
    pub fn last_read(&self) -> u32 {
        self.last_read.load(Ordering::Relaxed)
    }

    pub(crate) fn set_due(&self, tick: u32) {
        self.due.store(tick, Ordering::Relaxed);
    }

    pub(crate) fn due(&self) -> u32 {
        self.due.load(Ordering::Relaxed)
    }

    /// Whether the connection of `generation` is the last one attached.
    pub fn is_current(&self, generation: u64) -> bool {
        self.lifecycle.lock().generation == generation
    }

    /// Ends the connection of `generation`: its keep alive ran out.
    pub fn time_out(&self, generation: u64) {
        self.timed_out.store(generation, Ordering::Release);
        self.wake();
    }

    /// Whether the keep alive of the connection of `generation` ran out since
    /// it last asked.
    pub fn take_timed_out(&self, generation: u64) -> bool {
        // A load first: this is asked at every turn of a connection's loop.
        self.timed_out.load(Ordering::Relaxed) == generation
            && self
                .timed_out
                .compare_exchange(generation, 0, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }
}

/// A session as a router key: equal when it is the same session.
#[derive(Debug, Clone)]
pub struct SessionRef(pub Arc<SessionHandle>);

impl PartialEq for SessionRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for SessionRef {}

impl Hash for SessionRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

/// A session in the broker's set of them, found by its client id.
#[derive(Debug)]
struct ByClientId(Arc<SessionHandle>);

impl PartialEq for ByClientId {
    fn eq(&self, other: &Self) -> bool {
        self.0.client_id == other.0.client_id
    }
}

impl Eq for ByClientId {}

impl Hash for ByClientId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.client_id.hash(state);
    }
}

impl std::borrow::Borrow<MqttString> for ByClientId {
    fn borrow(&self) -> &MqttString {
        &self.0.client_id
    }
}

/// The outcome of attaching a connection to a session.
#[derive(Debug)]
pub struct Attached {
    /// The session.
    pub session: Arc<SessionHandle>,
    /// Whether an existing session was resumed.
    pub session_present: bool,
    /// The session generation this connection owns; it calls
    /// [`Broker::finished`] with it when it has finished, so a takeover can
    /// wait for it.
    pub generation: u64,
    /// The store's sequence number of the end of the session this attach
    /// replaced (a clean start over a kept session; 0: none). The CONNACK
    /// waits for it: the attach may have waited (a takeover) after pushing
    /// it, so the connection's thread need not be the one that pushed it.
    pub replaced: u64,
}

/// When a detached session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// With the connection.
    Now,
    /// After this long offline.
    After(Duration),
    /// Never.
    Never,
}

/// What [`Broker::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Problems in the password file or ACL that did not stop the reload.
    pub warnings: Vec<ConfigProblem>,
    /// The file changes settings other than the reloaded ones (password_file,
    /// acl_file, allow_anonymous, allow_zero_length_clientid, auto_id_prefix,
    /// per_listener_settings): those take effect at the next start.
    pub restart_needed: bool,
}

/// The shared broker state.
#[derive(Debug)]
pub struct Broker {
    /// The configuration in force.
    pub config: Config,
    router: RwLock<Router<SessionRef>>,
    retained: RwLock<RetainedStore>,
    /// Every session by client id. A set of the sessions, not a map from a
    /// copy of their ids: 40 bytes an entry otherwise.
    sessions: Mutex<HashSet<ByClientId>>,
    /// Every session's queue limits (from `config`).
    queue_limits: Arc<QueueLimits>,
    /// Counters.
    pub stats: Stats,
    next_id: AtomicU64,
    /// When the broker started.
    pub started: Instant,
    /// Password file, ACL, failed-login records; replaced by [`Broker::reload`].
    pub auth: Auth,
    /// Every connection's keep alive.
    pub keep_alives: Arc<crate::keepalive::KeepAlives>,
    /// The TLS listeners being served, for [`Broker::reload_tls`].
    pub(crate) tls: crate::transport::TlsRegistry,
    /// The store's writer; `None` with storage off.
    persistence: Option<Persistence>,
}

/// A session's state, locked. Changes the state records for the store are
/// handed to the store's writer when the guard is dropped (or before an op of
/// the broker's own, [`StateGuard::push`]), still under the lock, so the store
/// sees each session's changes in order.
#[derive(Debug)]
pub struct StateGuard<'a> {
    state: MutexGuard<'a, SessionState>,
    broker: &'a Broker,
    client_id: &'a MqttString,
}

impl StateGuard<'_> {
    fn flush(&mut self) {
        if self.state.has_changes() {
            let changes = self.state.take_changes();
            if let Some(persistence) = &self.broker.persistence {
                persistence.push(Op::Changes(self.client_id.clone(), changes));
            }
        }
    }

    /// Hands `op` to the store after the changes recorded so far.
    fn push(&mut self, op: Op) {
        self.flush();
        if let Some(persistence) = &self.broker.persistence {
            persistence.push(op);
        }
    }

    /// Writes the session's record and subscriptions, if the store keeps it.
    fn save(&mut self) {
        let Some(record) = self.state.record() else {
            return;
        };
        let session = StoredSession {
            client_id: self.client_id.clone(),
            expiry: record.expiry,
            disconnected_at: record.disconnected_at,
            will: record.will.clone(),
            subscriptions: self
                .state
                .subscriptions
                .iter()
                .map(|(filter, subscription)| (filter.clone(), *subscription))
                .collect(),
        };
        self.push(Op::Session(Box::new(session)));
    }
}

impl Deref for StateGuard<'_> {
    type Target = SessionState;

    fn deref(&self) -> &SessionState {
        &self.state
    }
}

impl DerefMut for StateGuard<'_> {
    fn deref_mut(&mut self) -> &mut SessionState {
        &mut self.state
    }
}

impl Drop for StateGuard<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Broker {
    /// A broker with `config` and no state. The password and ACL files are
    /// read now; one that cannot be read is logged, and the scope that names
    /// it refuses every client (for a password file) or every access (for an
    /// ACL). The binary loads them with [`AuthState::load`] first, to refuse
    /// to start instead.
    pub fn new(config: Config) -> Arc<Broker> {
        let state = match AuthState::load(&config) {
            Ok((state, report)) => {
                for problem in &report.warnings {
                    tracing::warn!("Warning: {problem}");
                }
                state
            }
            Err(report) => {
                for problem in &report.errors {
                    tracing::error!("Error: {problem}");
                }
                AuthState::fail_closed(&config)
            }
        };
        Broker::with_auth(config, state)
    }

    /// A broker with `config` and the password and ACL files already loaded.
    pub fn with_auth(config: Config, auth: AuthState) -> Arc<Broker> {
        Broker::build(config, auth, None)
    }

    fn build(config: Config, auth: AuthState, persistence: Option<Persistence>) -> Arc<Broker> {
        Arc::new(Broker {
            auth: Auth::new(auth, &config),
            router: RwLock::new(Router::new()),
            retained: RwLock::new(RetainedStore::new()),
            sessions: Mutex::new(HashSet::new()),
            queue_limits: Arc::new(QueueLimits {
                max_messages: config.max_queued_messages,
                max_bytes: config.max_queued_bytes,
                queue_qos0_offline: config.queue_qos0_messages,
            }),
            stats: Stats::default(),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            tls: Default::default(),
            keep_alives: Default::default(),
            persistence,
            config,
        })
    }

    /// A broker with `config` and its password and ACL files loaded, that keeps
    /// its state in `store`: everything in `snapshot` (what [`Store::load`]
    /// returned) is restored first (sessions with their subscriptions, queues
    /// and in-flight messages, retained messages, pending wills and expiry
    /// timers), then the writer starts. Runs inside the tokio runtime (it arms
    /// timers).
    pub fn with_store(
        config: Config,
        auth: AuthState,
        store: Arc<dyn Store>,
        snapshot: Snapshot,
    ) -> Arc<Broker> {
        let persistence =
            Persistence::start(store, config.storage.durability, snapshot.next_message_id);
        let broker = Broker::build(config, auth, Some(persistence));
        broker.restore(snapshot);
        broker
    }

    /// Rebuilds the state in `snapshot`.
    fn restore(self: &Arc<Self>, snapshot: Snapshot) {
        let clock = Clock::now();
        let messages: HashMap<MessageId, Arc<Message>> = snapshot
            .messages
            .into_iter()
            .map(|(id, m)| (id, Arc::new(clock.message(id, m))))
            .collect();
        {
            let mut retained = self.retained.write();
            for (_, id) in &snapshot.retained {
                if let Some(message) = messages.get(id) {
                    retained.retain(Arc::clone(message));
                }
            }
        }
        let delivery = |d: crate::storage::StoredDelivery| {
            Some(Delivery {
                message: Arc::clone(messages.get(&d.message)?),
                qos: d.qos,
                retain: d.retain,
                subscription_ids: d.subscription_ids,
                shared: d.shared,
                stored: true,
            })
        };
        let sessions = snapshot.sessions.len();
        for loaded in snapshot.sessions {
            let stored = loaded.session;
            let was_online = stored.disconnected_at.is_none();
            // A session online when the broker stopped lost its connection then.
            let disconnected_at = stored.disconnected_at.unwrap_or(clock.system);
            let record = SessionRecord {
                expiry: stored.expiry,
                disconnected_at: Some(disconnected_at),
                will: stored.will,
            };
            let queue = loaded.queue.into_iter().filter_map(delivery).collect();
            let inflight = loaded
                .inflight
                .into_iter()
                .filter_map(|i| Some((i.packet_id, i.state, delivery(i.delivery)?)))
                .collect();
            let state = SessionState::restore(
                self.queue_limits(),
                record.clone(),
                stored.subscriptions.iter().cloned().collect(),
                queue,
                inflight,
                loaded.incoming_qos2,
            );
            let session = self.new_session(stored.client_id.clone());
            *session.state.lock() = state;
            {
                let mut router = self.router.write();
                for (filter, subscription) in &stored.subscriptions {
                    route(&mut router, filter, &session, *subscription);
                }
            }
            self.sessions
                .lock()
                .replace(ByClientId(Arc::clone(&session)));
            if was_online {
                self.state(&session).save();
            }
            let left = |after: Duration| {
                (disconnected_at + after)
                    .duration_since(clock.system)
                    .unwrap_or(Duration::ZERO)
            };
            let expiry_left = match record.expiry {
                SessionExpiry::Never => None,
                SessionExpiry::After(after) => Some(left(after)),
            };
            if let Some(will) = record.will {
                let delay = left(will.delay).min(expiry_left.unwrap_or(Duration::MAX));
                let message = will_from_store(will, clock.instant);
                self.arm_will(&session, 0, message, delay);
            }
            if let Some(after) = expiry_left {
                self.arm_expiry(&session, 0, after);
            }
        }
        // Due while the broker was down: published now, to the sessions just
        // restored [MQTT-3.1.3-9].
        let wills = snapshot.expired_wills.len();
        for will in snapshot.expired_wills {
            self.publish(Arc::new(will_from_store(will, clock.instant)));
        }
        tracing::info!(
            "Restored {sessions} sessions and {} retained messages from the store; \
             published {wills} wills of sessions that expired meanwhile.",
            snapshot.retained.len()
        );
    }

    /// Locks `session`'s state; what it records for the store is handed on
    /// when the guard is dropped.
    pub fn state<'a>(&'a self, session: &'a SessionHandle) -> StateGuard<'a> {
        StateGuard {
            state: session.state.lock(),
            broker: self,
            client_id: &session.client_id,
        }
    }

    /// Starts or stops keeping `session` in the store, as the connection that
    /// just attached says: kept unless it ends with its connection. `will` is
    /// that connection's will, stored so that it is published after a crash.
    pub fn keep_session(&self, session: &SessionHandle, expiry: Expiry, will: Option<StoredWill>) {
        if self.persistence.is_none() {
            return;
        }
        let mut state = self.state(session);
        let expiry = match expiry {
            Expiry::Now => {
                if state.record().is_some() {
                    state.set_record(None);
                    state.push(Op::EndSession(session.client_id.clone()));
                }
                return;
            }
            Expiry::Never => SessionExpiry::Never,
            Expiry::After(after) => SessionExpiry::After(after),
        };
        state.set_record(Some(SessionRecord {
            expiry,
            disconnected_at: None,
            will,
        }));
        state.save();
    }

    /// The sequence number of the last change handed to the store; 0 without
    /// one. An acknowledgement sent after [`Broker::durable`] of it promises
    /// everything done so far is stored.
    pub fn store_seq(&self) -> u64 {
        self.persistence.as_ref().map_or(0, Persistence::submitted)
    }

    /// Waits until the change numbered `seq` is stored (durable with `sync`).
    pub async fn durable(&self, seq: u64) {
        if let Some(persistence) = &self.persistence {
            persistence.durable(seq).await;
        }
    }

    /// While the store cannot be written: the reason code to refuse QoS 1 and
    /// 2 messages with.
    pub fn store_refusal(&self) -> Option<ReasonCode> {
        self.persistence.as_ref().and_then(Persistence::failing)
    }

    /// Opens a group of store changes committed together (see
    /// [`crate::storage::writer::Group`]); `None` with storage off.
    pub fn store_group(&self) -> Option<crate::storage::writer::Group<'_>> {
        self.persistence.as_ref().map(Persistence::group)
    }

    /// The store's writer, if storage is on.
    pub fn persistence(&self) -> Option<&Persistence> {
        self.persistence.as_ref()
    }

    /// Writes what is still pending to the store and stops its writer. Called
    /// at shutdown, once the connections have ended.
    pub fn close_store(&self) {
        if let Some(persistence) = &self.persistence {
            persistence.close();
        }
    }

    fn queue_limits(&self) -> Arc<QueueLimits> {
        Arc::clone(&self.queue_limits)
    }

    fn new_session(&self, client_id: MqttString) -> Arc<SessionHandle> {
        Arc::new(SessionHandle {
            id: SessionId(self.next_id.fetch_add(1, Ordering::Relaxed)),
            client_id,
            state: Mutex::new(SessionState::new(self.queue_limits())),
            kicked: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            last_read: AtomicU32::new(0),
            due: AtomicU32::new(0),
            routes: AtomicUsize::new(0),
            finished: AtomicU64::new(0),
            lifecycle: Mutex::new(Lifecycle::default()),
        })
    }

    /// A client identifier for a client that sent an empty one, starting with
    /// `prefix` (`auto_id_prefix`): unique for this broker's lifetime and
    /// unlikely to meet one from an earlier run.
    pub fn assign_client_id(&self, prefix: &str) -> MqttString {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let id = format!("{prefix}{:016X}-{n}", seed ^ (self as *const Self as u64));
        MqttString::try_from(id).expect("a prefix from the configuration is a valid string")
    }

    /// Applies what a reload signal re-reads from `config`: the password and
    /// ACL files and the settings `per_listener_settings` scopes. The files are
    /// read before anything changes: if one cannot be used, the settings in
    /// force stay and the errors come back. Connected clients keep their login
    /// (as in Mosquitto); every later check uses the new files, deliveries of
    /// queued messages included, and anonymous clients are disconnected if
    /// they are no longer allowed.
    pub fn reload(&self, config: &Config) -> Result<Reloaded, ConfigReport> {
        let (state, report) = AuthState::load(config)?;
        self.auth.replace(state);
        // Each connection re-checks its client against the new files.
        self.wake_sessions();
        let listeners_changed = config.listeners.len() != self.config.listeners.len()
            || config
                .listeners
                .iter()
                .zip(&self.config.listeners)
                .any(|(new, old)| new.bind != old.bind || new.settings != old.settings);
        let mut unchanged = config.clone();
        unchanged.listeners.clone_from(&self.config.listeners);
        unchanged.allow_anonymous = self.config.allow_anonymous;
        unchanged.allow_zero_length_clientid = self.config.allow_zero_length_clientid;
        unchanged
            .auto_id_prefix
            .clone_from(&self.config.auto_id_prefix);
        unchanged
            .password_file
            .clone_from(&self.config.password_file);
        unchanged.acl_file.clone_from(&self.config.acl_file);
        unchanged.per_listener_settings = self.config.per_listener_settings;
        // The binary restyles its log lines itself.
        let logging = &self.config.logging;
        unchanged.logging.timestamp = logging.timestamp;
        unchanged.logging.timestamp_format = logging.timestamp_format.clone();
        unchanged.logging.connection_messages = logging.connection_messages;
        Ok(Reloaded {
            warnings: report.warnings,
            restart_needed: listeners_changed || unchanged != self.config,
        })
    }

    /// Wakes every session's connection, to read a flag set before: a
    /// shutdown, a reload. A session with none keeps a permit, which costs
    /// its next connection one spurious turn of its loop.
    pub fn wake_sessions(&self) {
        for session in self.sessions.lock().iter() {
            session.0.wake();
        }
    }

    /// Number of sessions, online or not.
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.router.read().len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// Attaches a new connection to `client_id`'s session: takes over a
    /// connection that holds it [MQTT-3.1.4-3], resumes it unless `clean_start`,
    /// else starts a new one. A later connection that takes this one over
    /// wakes it with [`SessionHandle::kicked`] true.
    pub async fn attach(self: &Arc<Self>, client_id: &MqttString, clean_start: bool) -> Attached {
        let mut replaced = 0;
        loop {
            let existing = self
                .sessions
                .lock()
                .get(client_id)
                .map(|s| Arc::clone(&s.0));
            let Some(session) = existing else {
                // A copy of its own: a clone of `client_id` would share (and
                // keep) its allocation with one more for the sharing.
                let own = bytes::Bytes::copy_from_slice(client_id.as_bytes());
                let session = self
                    .new_session(MqttString::from_bytes(own).unwrap_or_else(|_| client_id.clone()));
                let mut sessions = self.sessions.lock();
                if sessions.contains(client_id) {
                    continue; // another connection registered it first
                }
                sessions.insert(ByClientId(Arc::clone(&session)));
                drop(sessions);
                return Attached {
                    replaced,
                    ..self.take_ownership(session, false)
                };
            };
            let takeover = Arc::clone(
                session
                    .lifecycle
                    .lock()
                    .attaching
                    .get_or_insert_with(Arc::default),
            );
            let _attaching = takeover.lock.lock().await;
            let owner = {
                let mut lifecycle = session.lifecycle.lock();
                std::mem::take(&mut lifecycle.owned).then_some(lifecycle.generation)
            };
            if let Some(generation) = owner {
                // Generations stay far below the flag bit.
                let flag = if clean_start {
                    KICKED_BY_CLEAN_START
                } else {
                    0
                };
                session.kicked.store(generation | flag, Ordering::Release);
                // A permit, if the connection is not waiting: it reads the flag
                // at its next wait.
                session.wake();
                let finished = async {
                    loop {
                        let notified = takeover.finished.notified();
                        tokio::pin!(notified);
                        // Registered before the check: a finish after it wakes us.
                        notified.as_mut().enable();
                        if session.finished.load(Ordering::Acquire) >= generation {
                            return;
                        }
                        notified.await;
                    }
                };
                let _ = tokio::time::timeout(TAKEOVER_WAIT, finished).await;
            }
            if session.lifecycle.lock().ended {
                continue; // it expired while we waited: start over
            }
            if clean_start {
                self.end_session(&session);
                replaced = self.store_seq();
                continue;
            }
            let pending_will = session.lifecycle.lock().pending_will.take();
            drop(pending_will); // resumed in time: the will is not sent [MQTT-3.1.3-9]
            return self.take_ownership(Arc::clone(&session), true);
        }
    }

    fn take_ownership(&self, session: Arc<SessionHandle>, session_present: bool) -> Attached {
        let generation = {
            let mut lifecycle = session.lifecycle.lock();
            lifecycle.generation += 1;
            lifecycle.owned = true;
            lifecycle.generation
        };
        session.state.lock().set_online(true);
        self.stats.connected();
        Attached {
            session,
            session_present,
            generation,
            replaced: 0,
        }
    }

    /// Tells a takeover waiting for it that the connection of `generation` to
    /// `session` has finished.
    pub fn finished(&self, session: &SessionHandle, generation: u64) {
        session.finished.fetch_max(generation, Ordering::AcqRel);
        let takeover = session.lifecycle.lock().attaching.clone();
        if let Some(takeover) = takeover {
            takeover.finished.notify_waiters();
        }
    }

    /// Detaches the connection of `generation` from `session`: publishes or
    /// schedules its will, and ends the session now or arms its expiry.
    pub fn detach(
        self: &Arc<Self>,
        session: &Arc<SessionHandle>,
        generation: u64,
        will: Option<(Message, Duration)>,
        expiry: Expiry,
    ) {
        self.stats.disconnected();
        {
            let lifecycle = session.lifecycle.lock();
            if lifecycle.generation != generation || lifecycle.ended {
                // Taken over: the new connection owns the session now, but this
                // connection's will still stands.
                drop(lifecycle);
                if let Some((will, _)) = will {
                    self.publish(Arc::new(will));
                }
                return;
            }
        }
        {
            let mut state = self.state(session);
            state.set_online(false);
            let pending = match (&will, expiry) {
                (Some((will, delay)), Expiry::After(_) | Expiry::Never) if !delay.is_zero() => {
                    Some(stored_will(will, *delay))
                }
                _ => None,
            };
            if state.update_record(|record| {
                record.disconnected_at = Some(SystemTime::now());
                record.will = pending;
                // A v5 DISCONNECT may have changed it.
                match expiry {
                    Expiry::Never => record.expiry = SessionExpiry::Never,
                    Expiry::After(after) => record.expiry = SessionExpiry::After(after),
                    Expiry::Now => {}
                }
            }) {
                state.save();
            }
        }
        self.hand_over_shared(session);
        match (will, expiry) {
            (Some((will, _)), Expiry::Now) => {
                self.publish(Arc::new(will));
            }
            (Some((will, delay)), _) if delay.is_zero() => {
                self.publish(Arc::new(will));
            }
            (Some((will, delay)), expiry) => {
                // The will waits for the shorter of its delay and the session
                // expiry [MQTT-3.1.3-9].
                let delay = match expiry {
                    Expiry::After(after) => delay.min(after),
                    _ => delay,
                };
                self.arm_will(session, generation, will, delay);
            }
            (None, _) => {}
        }
        match expiry {
            Expiry::Now => self.end_session(session),
            Expiry::Never => {}
            Expiry::After(after) => self.arm_expiry(session, generation, after),
        }
    }

    /// Publishes `will` after `delay` unless the session is resumed first
    /// (its generation moves on).
    fn arm_will(
        self: &Arc<Self>,
        session: &Arc<SessionHandle>,
        generation: u64,
        will: Message,
        delay: Duration,
    ) {
        session.lifecycle.lock().pending_will = Some(Box::new(will));
        let broker = Arc::clone(self);
        let session = Arc::clone(session);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let will = {
                let mut lifecycle = session.lifecycle.lock();
                if lifecycle.generation != generation {
                    return;
                }
                lifecycle.pending_will.take()
            };
            if let Some(will) = will {
                // Sent: the store must not send it again after a restart.
                {
                    let mut state = broker.state(&session);
                    if state.update_record(|record| record.will = None) {
                        state.save();
                    }
                }
                broker.publish(Arc::new(*will));
            }
        });
    }

    /// Ends `session` after `after` offline unless it is resumed first.
    fn arm_expiry(
        self: &Arc<Self>,
        session: &Arc<SessionHandle>,
        generation: u64,
        after: Duration,
    ) {
        let broker = Arc::clone(self);
        let session = Arc::clone(session);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if session.lifecycle.lock().generation == generation
                && !session.state.lock().is_online()
            {
                broker.end_session(&session);
            }
        });
    }

    /// Ends a session: publishes a will still pending, removes its subscriptions
    /// and forgets it.
    pub fn end_session(&self, session: &Arc<SessionHandle>) {
        let will = {
            let mut lifecycle = session.lifecycle.lock();
            if lifecycle.ended {
                return;
            }
            lifecycle.ended = true;
            lifecycle.pending_will.take()
        };
        if let Some(will) = will {
            self.publish(Arc::new(*will));
        }
        {
            let mut state = self.state(session);
            if state.record().is_some() {
                state.set_record(None);
                state.push(Op::EndSession(session.client_id.clone()));
            }
        }
        {
            let mut sessions = self.sessions.lock();
            if sessions
                .get(&session.client_id)
                .is_some_and(|s| Arc::ptr_eq(&s.0, session))
            {
                sessions.remove(&session.client_id);
            }
        }
        let filters: Vec<TopicFilter> =
            session.state.lock().subscriptions.keys().cloned().collect();
        let mut router = self.router.write();
        for filter in &filters {
            unroute(&mut router, filter, session);
        }
    }

    /// Gives the messages `session` holds from shared subscriptions, and has not
    /// acknowledged, to other online members of the same groups. Those with no
    /// other member online stay where they are.
    fn hand_over_shared(&self, session: &Arc<SessionHandle>) {
        // Taken from one session and given to another in one commit, or a
        // crash between the two loses them.
        let _group = self.store_group();
        let taken = self.state(session).take_shared();
        if taken.is_empty() {
            return;
        }
        let router = self.router.read();
        for mut delivery in taken {
            let filter = delivery
                .shared
                .clone()
                .expect("take_shared returns shared deliveries");
            let member = router.shared_member(&filter, |key| key.0.state.lock().is_online());
            match member {
                Some((key, subscription)) => {
                    delivery.qos =
                        self.outgoing_qos(delivery.message.qos, subscription.options.qos);
                    delivery.subscription_ids = subscription.id.into_iter().collect();
                    self.deliver(&key.0, delivery);
                }
                None => {
                    self.state(session).enqueue(delivery);
                }
            }
        }
    }

    /// Adds or replaces a subscription of `session`; returns whether it existed.
    pub fn subscribe(
        &self,
        session: &Arc<SessionHandle>,
        filter: &TopicFilter,
        subscription: Subscription,
    ) -> bool {
        {
            let mut state = self.state(session);
            state.subscriptions.insert(filter.clone(), subscription);
            state.save();
        }
        route(&mut self.router.write(), filter, session, subscription)
    }

    /// Removes a subscription of `session`; returns whether it existed.
    pub fn unsubscribe(&self, session: &Arc<SessionHandle>, filter: &TopicFilter) -> bool {
        {
            let mut state = self.state(session);
            if state.subscriptions.remove(filter).is_some() {
                state.save();
            }
        }
        unroute(&mut self.router.write(), filter, session)
    }

    /// The QoS a message published at `published` goes out at to a
    /// subscription granted `granted`: the lower [MQTT-3.8.4-8], or the
    /// granted one with `upgrade_outgoing_qos` (live and retained messages
    /// alike, as in Mosquitto).
    #[inline]
    pub fn outgoing_qos(&self, published: QoS, granted: QoS) -> QoS {
        if self.config.upgrade_outgoing_qos {
            granted
        } else {
            published.min(granted)
        }
    }

    /// `check_retain_source`: whether a retained message's publisher may
    /// still publish to its topic under the ACL in force now (its listener's
    /// scope); if not, the message is not sent to a new subscriber, as in
    /// Mosquitto. A message with no publisher (a will, `$SYS`, or one kept
    /// from before the setting) is sent.
    pub fn retain_source_may_publish(&self, message: &Message) -> bool {
        if !self.config.check_retain_source {
            return true;
        }
        let Some(publisher) = &message.publisher else {
            return true;
        };
        let state = self.auth.state();
        let scope = state.scope(Some(publisher.listener));
        let client = crate::auth::acl::Client {
            client_id: &publisher.client_id,
            username: publisher.username.as_deref(),
        };
        scope.may_publish(&client, &message.topic)
    }

    /// The retained messages `filter` matches.
    pub fn retained_for(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        self.retained.read().matching(filter, now)
    }

    /// Stores a retained message (or clears one, for an empty payload).
    pub fn retain(&self, message: Arc<Message>) {
        let mut retained = self.retained.write();
        // Under the lock, so the store sees one topic's messages in order.
        // `$SYS` topics are the broker's own and rewritten at every start.
        if let Some(persistence) = &self.persistence {
            if !message.topic.as_str().starts_with('$') {
                persistence.push(Op::Retain(Arc::clone(&message)));
            }
        }
        retained.retain(message);
    }

    /// Routes `message` to every matching session, one copy per session at the
    /// highest QoS granted among its matching subscriptions and with every
    /// matching Subscription Identifier [MQTT-3.3.4-2, MQTT-3.3.4-3]; stores it
    /// if retained. Returns the number of sessions it was queued for.
    pub fn publish(&self, message: Arc<Message>) -> usize {
        if message.retain && self.config.retain_available {
            self.retain(Arc::clone(&message));
        }
        let mut count = 0;
        // Matches of sessions with more than one subscription in the router,
        // to merge; the others are delivered as they are found, with no copy
        // and no allocation.
        let mut overlapping: Vec<(&SessionRef, Delivery)> = Vec::new();
        let router = self.router.read();
        router.matches(
            &message.topic,
            |key| key.0.state.lock().is_online(),
            |m| {
                let options = m.subscription.options;
                // [MQTT-3.8.3-3]: No Local.
                if options.no_local && m.shared.is_none() && message.origin == Some(m.key.0.id) {
                    return;
                }
                let qos = self.outgoing_qos(message.qos, options.qos);
                // [MQTT-3.3.1-12, MQTT-3.3.1-13]: Retain As Published.
                let retain = message.retain && options.retain_as_published;
                let delivery = Delivery {
                    message: Arc::clone(&message),
                    qos,
                    retain,
                    subscription_ids: m.subscription.id.into_iter().collect(),
                    shared: m.shared.cloned(),
                    stored: false,
                };
                // Shared subscriptions deliver on their own (MQTT 5.0 §4.8.2),
                // and so does a session that can match only once.
                if m.shared.is_some() || m.key.0.routes.load(Ordering::Relaxed) <= 1 {
                    count += 1;
                    self.deliver(&m.key.0, delivery);
                } else {
                    overlapping.push((m.key, delivery));
                }
            },
        );
        // One copy per session [MQTT-3.3.4-2]: merge overlapping matches.
        if overlapping.len() > 1 {
            overlapping.sort_by_key(|(key, _)| key.0.id);
            overlapping.dedup_by(|(key, later), (first_key, first)| {
                if key.0.id != first_key.0.id {
                    return false;
                }
                first.qos = first.qos.max(later.qos);
                first.retain |= later.retain;
                first.subscription_ids.append(&mut later.subscription_ids);
                true
            });
        }
        count += overlapping.len();
        for (key, delivery) in overlapping {
            self.deliver(&key.0, delivery);
        }
        drop(router);
        count
    }

    /// Queues `delivery` for `session` and wakes its connection if needed.
    pub fn deliver(&self, session: &SessionHandle, delivery: Delivery) {
        let (outcome, backed_up, waker) = {
            let mut state = self.state(session);
            let outcome = state.enqueue(delivery);
            // Under the same lock as the queue: no second one to wake it.
            let waker = match outcome {
                Enqueued::First => state.wake(),
                _ => None,
            };
            (outcome, state.slows_publishers(), waker)
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        if backed_up {
            BACKED_UP.set(true);
        }
        match outcome {
            Enqueued::First | Enqueued::Behind | Enqueued::Skipped => {}
            Enqueued::Dropped { first } => {
                Stats::add(&self.stats.publish_dropped, 1);
                if first {
                    // Mosquitto's words, once per episode rather than per message.
                    tracing::info!(
                        "Outgoing messages are being dropped for client {}.",
                        session.client_id
                    );
                }
            }
        }
    }

    /// The QoS a subscription is granted: what it asked for, as we support all.
    pub fn granted_qos(&self, requested: QoS) -> QoS {
        requested
    }
}

thread_local! {
    /// Set when a delivery finds its receiver backed up; read by the
    /// connection whose packet caused it, on the same thread, as the store's
    /// pushed operations are (`storage::writer::take_pushed`).
    static BACKED_UP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a delivery made on this thread since the last call found its
/// (online) receiver backed up ([`crate::session::SessionState::is_backed_up`]).
pub(crate) fn take_backed_up() -> bool {
    BACKED_UP.replace(false)
}

/// Adds or replaces `session`'s subscription to `filter` in `router` (write
/// locked), counting its routes; returns whether it existed.
fn route(
    router: &mut Router<SessionRef>,
    filter: &TopicFilter,
    session: &Arc<SessionHandle>,
    subscription: Subscription,
) -> bool {
    let existed = router.subscribe(filter, SessionRef(Arc::clone(session)), subscription);
    if !existed && !filter.is_shared() {
        session.routes.fetch_add(1, Ordering::Relaxed);
    }
    existed
}

/// Removes `session`'s subscription to `filter` from `router` (write locked),
/// counting its routes; returns whether it existed.
fn unroute(
    router: &mut Router<SessionRef>,
    filter: &TopicFilter,
    session: &Arc<SessionHandle>,
) -> bool {
    let removed = router.unsubscribe(filter, &SessionRef(Arc::clone(session)));
    if removed && !filter.is_shared() {
        session.routes.fetch_sub(1, Ordering::Relaxed);
    }
    removed
}

/// A will as the store keeps it.
pub fn stored_will(will: &Message, delay: Duration) -> StoredWill {
    StoredWill {
        topic: will.topic.clone(),
        payload: will.payload.clone(),
        qos: will.qos,
        retain: will.retain,
        properties: (*will.properties).clone(),
        delay,
    }
}

/// A stored will as a message, its Message Expiry counted from `now`.
fn will_from_store(will: StoredWill, now: Instant) -> Message {
    Message {
        expires_at: will
            .properties
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs))),
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: will.properties.into(),
        origin: None,
        publisher: None,
        stored_id: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every session holds this, connected or not (issue 17: memory per idle
    /// connection): with its `Arc`'s 16 bytes, jemalloc serves it from its
    /// 320-byte size class while it is at most 304 bytes (368 before issue
    /// 17; the next class is 384). A new field should be boxed with the rare
    /// ones (`Lifecycle`, `SessionState`'s `Rare`) or justified.
    #[test]
    fn a_session_stays_small() {
        let size = std::mem::size_of::<SessionHandle>();
        assert!(size <= 304, "SessionHandle: {size} bytes");
    }
}
