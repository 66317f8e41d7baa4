//! `starling bench`: a load generator for any MQTT 3.1.1 or 5.0 broker.
//!
//! It speaks MQTT through starling-proto's codec directly (no client library),
//! one tokio task per connection, and writes many packets per syscall, so that
//! the broker, not the load, is what a run measures. Layout:
//! - this file: the command line and the runtime;
//! - [`run`]: the scenarios (who connects, who publishes where, who subscribes
//!   to what), the start barrier, the drain at the end;
//! - [`conn`]: opening one connection (TCP, CONNECT/CONNACK, SUBSCRIBE/SUBACK)
//!   and the `conn` scenario, which only holds connections open;
//! - [`publisher`] and [`subscriber`]: the two connection loops;
//! - [`payload`]: the payload header (publisher index, sequence number, send
//!   time) and the pre-encoded PUBLISH that publishers patch per message;
//! - [`stats`]: counters shared by the tasks, latency histograms, the progress
//!   line and the final summary (text or JSON);
//! - [`sink`]: a local TCP peer for `--discard` that takes publications and
//!   throws them away, or floods subscribers: measures the generator alone.

mod conn;
mod payload;
mod publisher;
mod run;
mod sink;
mod stats;
mod stream;
mod subscriber;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use starling_proto::{ProtocolVersion, QoS};

/// The load patterns `starling bench` can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    /// Open -c connections at --conn-rate and hold them for the duration.
    Conn,
    /// -c publishers, each on its own topic; nobody subscribes.
    Pub,
    /// -m subscribers to the topic pattern (its %i level becomes `+`): count
    /// what other processes publish (e.g. a `starling bench pub`).
    Sub,
    /// -c publishers (default 16) on their own topics -> -m subscribers
    /// (default 1) on a wildcard filter that matches them all.
    Fanin,
    /// -c publishers (default 1) on one topic -> -m subscribers (default 64).
    Fanout,
    /// -c publisher/subscriber pairs (default 32), each pair on its own topic.
    Pairs,
    /// -c pairs (default 1) at a fixed rate (default 1000 msg/s): end-to-end latency.
    Latency,
}

/// `starling bench SCENARIO [OPTIONS]`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub(crate) struct BenchArgs {
    /// The load pattern.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Broker host (name or address).
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    port: u16,
    /// MQTT version: 311 (3.1.1) or 5.
    #[arg(short = 'V', long = "protocol-version", default_value = "311", value_parser = parse_version)]
    version: ProtocolVersion,
    /// QoS of publications and subscriptions: 0, 1 or 2.
    #[arg(short = 'q', long, default_value = "0", value_parser = parse_qos)]
    qos: QoS,
    /// Payload size in bytes (at least the 20-byte header: publisher, sequence, time).
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Messages per second per publisher; 0 = as fast as the broker takes them.
    #[arg(short = 'r', long)]
    rate: Option<u64>,
    /// Seconds of publishing (for `conn`: of holding the connections once all are open).
    #[arg(short = 'd', long, default_value_t = 10.0)]
    duration: f64,
    /// Publishers (pub, fanin, fanout), pairs (pairs, latency) or connections (conn).
    #[arg(short = 'c', long)]
    count: Option<usize>,
    /// Subscribers (sub, fanin, fanout).
    #[arg(short = 'm', long)]
    subscribers: Option<usize>,
    /// Topic pattern; %i stands for the publisher's (or pair's) index.
    #[arg(short = 't', long, default_value = "bench/%i")]
    topic: String,
    /// Persistent sessions: Clean Session 0 (3.1.1), or Clean Start 0 with a
    /// Session Expiry Interval of one hour (5.0).
    #[arg(long)]
    persistent: bool,
    /// QoS 1 and 2 messages a publisher keeps in flight (capped by the broker's
    /// Receive Maximum in 5.0). The default, 20, is Mosquitto's
    /// max_inflight_messages: a 3.1.1 client cannot learn the broker's limit,
    /// and Mosquitto drops QoS 2 messages beyond it.
    #[arg(long, default_value_t = NonZeroU16::new(20).expect("20 is not zero"))]
    inflight: NonZeroU16,
    /// New connections per second; 0 = as fast as --conn-parallel allows.
    #[arg(long, default_value_t = 0)]
    conn_rate: u64,
    /// Local addresses to connect from, in turn (e.g. 127.0.0.2,127.0.0.3): one
    /// address reaches one broker port from at most ~28,000 ephemeral ports.
    #[arg(long, value_delimiter = ',', value_name = "ADDR,...")]
    bind: Vec<IpAddr>,
    /// Connection handshakes (TCP + CONNECT/CONNACK) in progress at once.
    #[arg(long, default_value_t = 64)]
    conn_parallel: usize,
    /// Keep Alive in seconds (PINGREQ is sent after half of it without a write).
    #[arg(short = 'k', long, default_value_t = 60)]
    keepalive: u16,
    /// Client identifier prefix [default: bench-PID].
    #[arg(short = 'i', long)]
    id_prefix: Option<String>,
    /// Seconds without a new message after which subscribers stop waiting,
    /// once the publishers stopped, for what is still on its way (QoS 1 and 2:
    /// up to a minute in all while messages keep coming; QoS 0: at most half a
    /// second of quiet, and this long in all). Publishers wait this long for
    /// their last acknowledgements.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// Report this process's resident memory (e.g. the broker's) before the
    /// connections open and once they are all open.
    #[arg(long, value_name = "PID")]
    watch_pid: Option<u32>,
    /// Runtime worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// TLS: trust the CAs of this file for the broker's certificate (its name
    /// checked against -h unless --insecure).
    #[arg(long, value_name = "FILE")]
    cafile: Option<std::path::PathBuf>,
    /// TLS without checking the broker's host name.
    #[arg(long)]
    insecure: bool,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    quiet: bool,
    /// Measure the generator alone: talk to a local TCP peer instead of a
    /// broker. `pub` publishes into it and it discards everything; `sub`
    /// subscribes and it sends PUBLISH packets as fast as it can. QoS 0 only.
    #[arg(long, hide = true)]
    discard: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
}

fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "311" | "3.1.1" | "mqttv311" | "4" => Ok(ProtocolVersion::V3_1_1),
        "5" | "5.0" | "mqttv5" => Ok(ProtocolVersion::V5),
        _ => Err(format!("unknown MQTT version `{s}`: use 311 or 5")),
    }
}

fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| format!("QoS must be 0, 1 or 2, not `{s}`"))
}

/// A run's settings, checked and with the scenario's defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) scenario: Scenario,
    pub(crate) addr: SocketAddr,
    pub(crate) version: ProtocolVersion,
    pub(crate) qos: QoS,
    pub(crate) size: usize,
    /// Messages per second per publisher; `None` = unbounded.
    pub(crate) rate: Option<u64>,
    pub(crate) duration: Duration,
    /// Publishers, pairs or connections.
    pub(crate) count: usize,
    pub(crate) subscribers: usize,
    pub(crate) topic: String,
    pub(crate) persistent: bool,
    pub(crate) inflight: NonZeroU16,
    pub(crate) conn_rate: Option<u64>,
    pub(crate) conn_parallel: usize,
    pub(crate) bind: Vec<IpAddr>,
    pub(crate) keepalive: u16,
    pub(crate) id_prefix: String,
    pub(crate) drain: Duration,
    pub(crate) watch_pid: Option<u32>,
    pub(crate) threads: usize,
    pub(crate) json: bool,
    pub(crate) quiet: bool,
    pub(crate) discard: bool,
    /// The broker's host, for TLS's name check and SNI.
    pub(crate) host: String,
    /// TLS, when `--cafile` is given: one context for every connection.
    pub(crate) tls: Option<std::sync::Arc<starling_transport::tls::ClientTls>>,
}

impl Settings {
    fn new(args: BenchArgs) -> anyhow::Result<Settings> {
        use Scenario::*;
        let scenario = args.scenario;
        let (count, subscribers) = match scenario {
            Conn => (1000, 0),
            Pub => (1, 0),
            Sub => (0, 1),
            Fanin => (16, 1),
            Fanout => (1, 64),
            Pairs => (32, 32),
            Latency => (1, 1),
        };
        let count = args.count.unwrap_or(count);
        let subscribers = match scenario {
            Pairs | Latency => {
                anyhow::ensure!(
                    args.subscribers.is_none(),
                    "{scenario:?} has one subscriber per pair: set the pairs with -c"
                );
                count
            }
            Conn | Pub => {
                anyhow::ensure!(
                    args.subscribers.is_none(),
                    "{scenario:?} has no subscribers"
                );
                0
            }
            Sub | Fanin | Fanout => args.subscribers.unwrap_or(subscribers),
        };
        if scenario == Sub {
            anyhow::ensure!(
                args.count.is_none(),
                "sub has no publishers: set subscribers with -m"
            );
        }
        let rate = match (scenario, args.rate) {
            (Latency, None) => Some(1000),
            (Latency, Some(0)) => anyhow::bail!("latency needs a fixed rate (-r above 0)"),
            (_, rate) => rate.filter(|&r| r > 0),
        };
        anyhow::ensure!(
            args.size >= payload::HEADER_LEN,
            "the payload size must be at least {} bytes (its header)",
            payload::HEADER_LEN
        );
        anyhow::ensure!(
            args.duration > 0.0 && args.duration.is_finite(),
            "the duration must be above 0 seconds"
        );
        anyhow::ensure!(args.drain >= 0.0 && args.drain.is_finite(), "bad --drain");
        anyhow::ensure!(args.conn_parallel > 0, "--conn-parallel must be above 0");
        anyhow::ensure!(!args.topic.is_empty(), "the topic pattern is empty");
        if args.discard {
            anyhow::ensure!(
                matches!(scenario, Pub | Sub) && args.qos == QoS::AtMostOnce,
                "--discard runs `pub` or `sub` at QoS 0 only (the peer acknowledges nothing)"
            );
        }
        let threads = match args.threads {
            Some(0) => anyhow::bail!("--threads must be above 0"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        anyhow::ensure!(
            !(args.discard && args.cafile.is_some()),
            "--discard speaks plain TCP: no --cafile"
        );
        anyhow::ensure!(
            args.cafile.is_some() || !args.insecure,
            "--insecure is for TLS, which --cafile turns on"
        );
        let tls = match &args.cafile {
            None => None,
            Some(cafile) => Some(std::sync::Arc::new(
                starling_transport::tls::ClientTls::new(
                    &starling_transport::tls::ClientSettings {
                        cafile: Some(cafile.clone()),
                        insecure: args.insecure,
                        ..Default::default()
                    },
                )?,
            )),
        };
        let addr = if args.discard {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            resolve(&args.host, args.port)?
        };
        Ok(Settings {
            scenario,
            addr,
            version: args.version,
            qos: args.qos,
            size: args.size,
            rate,
            duration: Duration::from_secs_f64(args.duration),
            count,
            subscribers,
            topic: args.topic,
            persistent: args.persistent,
            inflight: args.inflight,
            conn_rate: Some(args.conn_rate).filter(|&r| r > 0),
            conn_parallel: args.conn_parallel,
            bind: args.bind,
            keepalive: args.keepalive,
            id_prefix: args
                .id_prefix
                .unwrap_or_else(|| format!("bench-{}", std::process::id())),
            drain: Duration::from_secs_f64(args.drain),
            watch_pid: args.watch_pid,
            threads,
            json: args.json,
            quiet: args.quiet,
            discard: args.discard,
            host: args.host,
            tls,
        })
    }
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))
}

pub(crate) fn main(args: BenchArgs) -> ExitCode {
    match try_main(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("starling bench: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn try_main(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut settings = Settings::new(args)?;
    // One file descriptor per connection: `conn` may hold 100,000.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("starling bench: warning: cannot raise the open file limit: {e}");
    }
    let _sink = if settings.discard {
        let source = (settings.scenario == Scenario::Sub).then_some(sink::Source {
            version: settings.version,
            size: settings.size,
        });
        let sink = sink::Sink::start(source).context("cannot start the discard peer")?;
        settings.addr = sink.addr();
        Some(sink)
    } else {
        None
    };
    let runtime = if settings.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    let summary = runtime.block_on(run::run(settings.clone()))?;
    if let Some(sink) = &_sink {
        let bytes = sink.bytes();
        eprintln!("discard peer: read {bytes} bytes");
    }
    summary.print(&settings)?;
    Ok(if summary.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
