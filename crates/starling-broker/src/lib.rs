//! Starling's broker: sessions, subscriptions, retained messages, wills and the
//! tokio shell that serves them.
//!
//! Layout, bottom up:
//! - [`message`]: the shared message and a per-subscriber delivery;
//! - [`router`]: the subscription trie with shared groups;
//! - [`retained`]: retained messages by topic;
//! - [`session`]: one session's queue, in-flight and QoS 2 state (no I/O);
//! - [`broker`]: the state every connection shares, session lifecycles, routing;
//! - [`connection`]: one client connection, CONNECT to close;
//! - [`server`]: listeners, accept loops, shutdown;
//! - [`transport`]: what a listener does before MQTT: PROXY header, TLS,
//!   WebSocket upgrade; [`rate`]: the per-client PUBLISH rate limit;
//! - [`sys`]: `$SYS` statistics; [`stats`]: the counters behind them;
//! - [`storage`]: the persistent store behind the `Store` trait (SQLite, memory);
//! - [`auth`]: password file, ACL file, failed-login slow-down, hot reload;
//! - [`config`]: the configuration and its two file syntaxes;
//! - [`log`]: packet summaries for `-v`.

pub mod auth;
pub mod broker;
pub mod config;
pub mod connection;
pub mod keepalive;
pub mod log;
pub mod message;
pub mod rate;
pub mod retained;
pub mod router;
pub mod server;
pub mod session;
pub mod stats;
pub mod storage;
pub mod sys;
pub mod transport;

pub use broker::Broker;
pub use config::Config;
