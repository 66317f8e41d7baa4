//! Authentication and access control, as Mosquitto's `password_file`,
//! `acl_file`, `allow_anonymous` and `per_listener_settings` define them.
//!
//! - [`password`]: the password file and hash verification (pure);
//! - [`acl`]: the ACL file and its checks (pure);
//! - [`psk`]: the `psk_file` of TLS-PSK listeners (pure);
//! - [`limiter`]: slowing down repeated failed logins (pure, time passed in);
//! - this file: the state the broker checks clients with. [`AuthState`] holds
//!   one [`Scope`] for the broker and, with `per_listener_settings`, one per
//!   listener; [`Auth`] keeps the state in force behind an [`ArcSwap`], read
//!   without a lock on every check and replaced whole by a reload, and
//!   tells connections of each reload through a `watch` channel.
//!
//! Who may connect (Mosquitto 2's `mosquitto_unpwd_check`): with no password
//! file, `allow_anonymous` decides for everyone, named or not; with one, a
//! client that gives a user name must match it, and one that gives none is let
//! in only if `allow_anonymous`. A client never learns which part was wrong:
//! every refusal is CONNACK 5 (3.x) / 0x87 Not authorized (v5), as Mosquitto
//! sends.
//!
//! What a client may do: everything when there is no ACL file, but publish to
//! `$SYS` (Mosquitto refuses that to every client but bridges, which may write
//! `$SYS/broker/connection/+/state` if their ACL lets them) or to `$share`.

pub mod acl;
pub mod limiter;
pub mod password;
pub mod psk;

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use starling_proto::{TopicFilter, TopicName};
use tokio::sync::watch;

use crate::config::{Config, ConfigProblem, ConfigReport, Security};
use acl::{Access, Acl, Client};
use limiter::Limiter;
use password::PasswordFile;
use psk::PskFile;

/// A problem on one line of a password or ACL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// The 1-based line.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The answer to a CONNECT's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Let in.
    Allowed,
    /// No user name, and anonymous clients are not allowed.
    AnonymousRefused,
    /// A user name the password file does not accept with that password, or
    /// any user name where no password file can vouch for it.
    BadCredentials,
}

/// The security of the broker or of one listener, files loaded.
#[derive(Debug)]
pub struct Scope {
    /// The settings as configured.
    pub settings: Security,
    /// The password file, if one is configured.
    pub passwords: Option<Arc<PasswordFile>>,
    /// The ACL, if one is configured.
    pub acl: Option<Arc<Acl>>,
    /// The pre-shared keys of TLS-PSK listeners, if a `psk_file` is
    /// configured.
    pub psk: Option<Arc<PskFile>>,
}

impl Scope {
    /// Whether [`Scope::login`] computes a hash for these credentials (and
    /// should run off the async threads).
    pub fn hashes(&self, username: Option<&str>) -> bool {
        self.passwords.is_some() && username.is_some()
    }

    /// Checks a CONNECT's user name and password. May compute a password hash
    /// (see [`Scope::hashes`]).
    pub fn login(&self, username: Option<&str>, password: Option<&[u8]>) -> Login {
        match (&self.passwords, username) {
            (_, None) if self.settings.allow_anonymous => Login::Allowed,
            (_, None) => Login::AnonymousRefused,
            (Some(passwords), Some(username)) => {
                if passwords.check(username, password) {
                    Login::Allowed
                } else {
                    Login::BadCredentials
                }
            }
            // Nothing can check the name: Mosquitto lets it in exactly when it
            // would let an anonymous client in.
            (None, Some(_)) if self.settings.allow_anonymous => Login::Allowed,
            (None, Some(_)) => Login::BadCredentials,
        }
    }

    /// Whether `client` may publish to `topic` (PUBLISH, will).
    pub fn may_publish(&self, client: &Client<'_>, topic: &TopicName) -> bool {
        let name = topic.as_str();
        if name.starts_with("$SYS") {
            let bridge_state =
                starling_proto::topic::matches("$SYS/broker/connection/+/state", name);
            if !bridge_state {
                return false;
            }
        } else if name.starts_with("$share") {
            return false;
        }
        self.acl
            .as_ref()
            .map_or(true, |acl| acl.check(client, topic, Access::Write))
    }

    /// Whether `client` may receive a message published to `topic`.
    pub fn may_read(&self, client: &Client<'_>, topic: &TopicName) -> bool {
        self.acl
            .as_ref()
            .map_or(true, |acl| acl.check(client, topic, Access::Read))
    }

    /// Whether `client` may subscribe to `filter`.
    pub fn may_subscribe(&self, client: &Client<'_>, filter: &TopicFilter) -> bool {
        self.acl
            .as_ref()
            .map_or(true, |acl| acl.check_subscribe(client, filter))
    }

    /// Whether every delivery is checked (an ACL is configured).
    pub fn checks_reads(&self) -> bool {
        self.acl.is_some()
    }
}

/// Every scope in force; replaced whole on reload.
#[derive(Debug)]
pub struct AuthState {
    /// Bumped by each reload that took effect.
    pub generation: u64,
    global: Arc<Scope>,
    /// With `per_listener_settings`: each listener's scope, by bound address.
    listeners: Vec<(SocketAddr, Arc<Scope>)>,
}

impl AuthState {
    /// Loads the password and ACL files `config` names. Unreadable files and
    /// ACL errors are errors; password entries Mosquitto would drop are warnings.
    pub fn load(config: &Config) -> Result<(AuthState, ConfigReport), ConfigReport> {
        let mut loader = Loader::default();
        let global = loader.scope(&config.security());
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let own = listener
                .security
                .as_ref()
                .filter(|_| config.per_listener_settings);
            let mut security = own.cloned().unwrap_or_else(|| config.security());
            // Mosquitto 2.1's `listener_allow_anonymous` and
            // `listener_auto_id_prefix`: this listener's, whatever
            // `per_listener_settings` says.
            let settings = &listener.settings;
            let overridden =
                settings.allow_anonymous.is_some() || settings.auto_id_prefix.is_some();
            if let Some(allow) = settings.allow_anonymous {
                security.allow_anonymous = allow;
            }
            if let Some(prefix) = &settings.auto_id_prefix {
                security.auto_id_prefix.clone_from(prefix);
            }
            if own.is_some() || overridden {
                listeners.push((listener.bind, loader.scope(&security)));
            }
        }
        if loader.report.errors.is_empty() {
            let state = AuthState {
                generation: 0,
                global,
                listeners,
            };
            Ok((state, loader.report))
        } else {
            Err(loader.report)
        }
    }

    /// The state for `config` that refuses what its files would have decided:
    /// for a broker whose files could not be loaded (see [`AuthState::load`]).
    pub fn fail_closed(config: &Config) -> AuthState {
        let closed = |security: &Security| {
            Arc::new(Scope {
                settings: security.clone(),
                passwords: security
                    .password_file
                    .as_ref()
                    .map(|_| Arc::new(PasswordFile::default())),
                acl: security.acl_file.as_ref().map(|_| Arc::new(Acl::default())),
                psk: security
                    .psk_file
                    .as_ref()
                    .map(|_| Arc::new(PskFile::default())),
            })
        };
        let listeners = config
            .listeners
            .iter()
            .filter(|_| config.per_listener_settings)
            .filter_map(|l| Some((l.bind, closed(l.security.as_ref()?))))
            .collect();
        AuthState {
            generation: 0,
            global: closed(&config.security()),
            listeners,
        }
    }

    /// The scope of a connection accepted on `listener` (its bound address):
    /// that listener's own, or the broker's.
    pub fn scope(&self, listener: Option<SocketAddr>) -> &Arc<Scope> {
        listener
            .and_then(|addr| self.listeners.iter().find(|(bind, _)| *bind == addr))
            .map_or(&self.global, |(_, scope)| scope)
    }
}

/// Reads each file once, however many scopes name it.
#[derive(Default)]
struct Loader {
    passwords: HashMap<PathBuf, Arc<PasswordFile>>,
    acls: HashMap<PathBuf, Arc<Acl>>,
    psks: HashMap<PathBuf, Arc<PskFile>>,
    report: ConfigReport,
}

impl Loader {
    fn scope(&mut self, security: &Security) -> Arc<Scope> {
        let passwords = security.password_file.as_ref().map(|path| {
            if let Some(file) = self.passwords.get(path) {
                return Arc::clone(file);
            }
            let file = match read(path, &mut self.report) {
                Some(text) => {
                    let (file, problems) = PasswordFile::parse(&text);
                    for problem in problems {
                        self.report.warnings.push(at(path, problem));
                    }
                    file
                }
                None => PasswordFile::default(),
            };
            let file = Arc::new(file);
            self.passwords.insert(path.clone(), Arc::clone(&file));
            file
        });
        let acl = security.acl_file.as_ref().map(|path| {
            if let Some(acl) = self.acls.get(path) {
                return Arc::clone(acl);
            }
            let acl = match read(path, &mut self.report).map(|text| Acl::parse(&text)) {
                Some(Ok((acl, warnings))) => {
                    for warning in warnings {
                        self.report.warnings.push(at(path, warning));
                    }
                    acl
                }
                Some(Err(errors)) => {
                    for error in errors {
                        self.report.errors.push(at(path, error));
                    }
                    Acl::default()
                }
                None => Acl::default(),
            };
            let acl = Arc::new(acl);
            self.acls.insert(path.clone(), Arc::clone(&acl));
            acl
        });
        let psk = security.psk_file.as_ref().map(|path| {
            if let Some(file) = self.psks.get(path) {
                return Arc::clone(file);
            }
            let file = match read(path, &mut self.report) {
                Some(text) => {
                    let (file, problems) = PskFile::parse(&text);
                    for problem in problems {
                        self.report.warnings.push(at(path, problem));
                    }
                    file
                }
                None => PskFile::default(),
            };
            let file = Arc::new(file);
            self.psks.insert(path.clone(), Arc::clone(&file));
            file
        });
        Arc::new(Scope {
            settings: security.clone(),
            passwords,
            acl,
            psk,
        })
    }
}

fn read(path: &Path, report: &mut ConfigReport) -> Option<String> {
    match fs::read(path).map(String::from_utf8) {
        Ok(Ok(text)) => Some(text),
        Ok(Err(_)) => {
            report.errors.push(ConfigProblem {
                file: path.to_path_buf(),
                line: 0,
                reason: "the file is not valid UTF-8".into(),
            });
            None
        }
        Err(e) => {
            report.errors.push(ConfigProblem {
                file: path.to_path_buf(),
                line: 0,
                reason: format!("cannot read the file: {e}"),
            });
            None
        }
    }
}

fn at(path: &Path, problem: LineProblem) -> ConfigProblem {
    ConfigProblem {
        file: path.to_path_buf(),
        line: problem.line,
        reason: problem.reason,
    }
}

/// The broker's authentication and access control: the state in force and
/// the failed-login records.
#[derive(Debug)]
pub struct Auth {
    state: ArcSwap<AuthState>,
    limiter: Mutex<Limiter>,
    /// Logins refused (bad credentials or anonymous), for `$SYS`.
    pub logins_failed: std::sync::atomic::AtomicU64,
    /// Logins whose CONNACK the limiter held back, for `$SYS`.
    pub logins_delayed: std::sync::atomic::AtomicU64,
    reloaded: watch::Sender<u64>,
    /// Password hashes computed at once, at most one per core: an Argon2id
    /// hash as Mosquitto 2.1 writes it takes 46 MiB, and a flood of CONNECTs
    /// must not take one each at the same time.
    hashing: tokio::sync::Semaphore,
}

impl Auth {
    /// Auth with `state` in force.
    pub fn new(state: AuthState, config: &Config) -> Auth {
        let (reloaded, _) = watch::channel(state.generation);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Auth {
            state: ArcSwap::from_pointee(state),
            limiter: Mutex::new(Limiter::new(config.login_delay)),
            logins_failed: Default::default(),
            logins_delayed: Default::default(),
            reloaded,
            hashing: tokio::sync::Semaphore::new(cores),
        }
    }

    /// The state in force (a cheap, lock-free read).
    pub fn state(&self) -> Arc<AuthState> {
        self.state.load_full()
    }

    /// Tells of each reload that took effect.
    pub fn subscribe_reloads(&self) -> watch::Receiver<u64> {
        self.reloaded.subscribe()
    }

    /// Puts `state` in force for every check from now on.
    pub fn replace(&self, mut state: AuthState) {
        state.generation = self.state.load().generation + 1;
        let generation = state.generation;
        self.state.store(Arc::new(state));
        self.reloaded.send_replace(generation);
    }

    /// Checks a CONNECT's credentials in `scope` for a client from `peer`. A
    /// password hash is computed on a blocking thread, and the answer comes
    /// only after the wait [`limiter`] sets for that address: this task alone
    /// waits, no other client does.
    pub async fn login(
        &self,
        scope: &Arc<Scope>,
        peer: SocketAddr,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Login {
        if !scope.hashes(username) {
            let login = scope.login(username, password);
            if login != Login::Allowed {
                crate::stats::Stats::add(&self.logins_failed, 1);
            }
            return login;
        }
        let (task_scope, user, pass) = (
            Arc::clone(scope),
            username.map(str::to_owned),
            password.map(<[u8]>::to_vec),
        );
        // The semaphore is never closed, so `acquire` does not fail.
        let permit = self.hashing.acquire().await.ok();
        let login =
            tokio::task::spawn_blocking(move || task_scope.login(user.as_deref(), pass.as_deref()))
                .await
                .unwrap_or(Login::BadCredentials);
        drop(permit);
        let hold = match login {
            Login::Allowed => self.successful_login(peer, username, Instant::now()),
            _ => {
                crate::stats::Stats::add(&self.logins_failed, 1);
                self.failed_login(peer, username, Instant::now())
            }
        };
        if !hold.is_zero() {
            crate::stats::Stats::add(&self.logins_delayed, 1);
            tokio::time::sleep(hold).await;
        }
        login
    }

    /// Records a failed login of `user` from `peer`; how long to hold its
    /// CONNACK.
    pub fn failed_login(&self, peer: SocketAddr, user: Option<&str>, now: Instant) -> Duration {
        self.limiter.lock().fail(peer.ip(), user, now)
    }

    /// Records a successful login of `user` from `peer`; how long to hold
    /// its CONNACK.
    pub fn successful_login(&self, peer: SocketAddr, user: Option<&str>, now: Instant) -> Duration {
        self.limiter.lock().succeed(peer.ip(), user, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(allow_anonymous: bool, passwords: Option<&str>, acl: Option<&str>) -> Scope {
        Scope {
            settings: Security {
                allow_anonymous,
                ..Security::default()
            },
            passwords: passwords.map(|text| Arc::new(PasswordFile::parse(text).0)),
            acl: acl.map(|text| Arc::new(Acl::parse(text).unwrap().0)),
            psk: None,
        }
    }

    const ALICE: &str = "alice:$6$RcBkrgsDoFAdHFiw$J1eH5eNA3/Zi7J+tAUffg1ZRgrNK/7RI63Fb0dkeNiDnnn48Pv1mpT+NHFPGzpzASLKbq7YNM8w8+/JHwmPcNw==\n";

    #[test]
    fn login_follows_mosquitto_unpwd_check() {
        // mosquitto.conf(5) allow_anonymous: "whether clients that connect
        // without providing a username are allowed to connect"; password_file:
        // "If allow_anonymous is set to false, only users defined in this file
        // will be able to connect".
        let open = scope(true, None, None);
        assert_eq!(open.login(None, None), Login::Allowed);
        assert_eq!(open.login(Some("anyone"), None), Login::Allowed);
        let closed = scope(false, None, None);
        assert_eq!(closed.login(None, None), Login::AnonymousRefused);
        assert_eq!(
            closed.login(Some("anyone"), Some(b"x")),
            Login::BadCredentials
        );
        let file = scope(false, Some(ALICE), None);
        assert_eq!(file.login(Some("alice"), Some(b"hunter2")), Login::Allowed);
        assert_eq!(
            file.login(Some("alice"), Some(b"nope")),
            Login::BadCredentials
        );
        assert_eq!(file.login(Some("alice"), None), Login::BadCredentials);
        assert_eq!(
            file.login(Some("eve"), Some(b"hunter2")),
            Login::BadCredentials
        );
        assert_eq!(file.login(None, None), Login::AnonymousRefused);
        // "Setting allow_anonymous to true when password_file is defined is
        // valid": anonymous clients in, named ones still checked.
        let both = scope(true, Some(ALICE), None);
        assert_eq!(both.login(None, None), Login::Allowed);
        assert_eq!(both.login(Some("eve"), Some(b"x")), Login::BadCredentials);
        assert!(both.hashes(Some("eve")) && !both.hashes(None));
    }

    #[test]
    fn sys_and_share_are_not_writable_by_clients() {
        let topic = |t: &str| TopicName::try_from(t).unwrap();
        let client = Client {
            client_id: "c",
            username: None,
        };
        let open = scope(true, None, None);
        assert!(open.may_publish(&client, &topic("a/b")));
        assert!(!open.may_publish(&client, &topic("$SYS/broker/uptime")));
        assert!(!open.may_publish(&client, &topic("$share/g/x")));
        assert!(open.may_publish(&client, &topic("$SYS/broker/connection/c/state")));
        assert!(open.may_read(&client, &topic("$SYS/broker/uptime")));
        let acl = scope(true, None, Some("topic read a/#\n"));
        assert!(!acl.may_publish(&client, &topic("$SYS/broker/connection/c/state")));
        assert!(!acl.may_publish(&client, &topic("a/b")));
        assert!(acl.may_read(&client, &topic("a/b")));
    }
}
