//! Store write throughput: N persistent QoS 1 messages, each stored once and
//! queued for one offline session (two changes), applied in batches of 1, 64
//! and 1024, with each durability and in memory. Prints messages per second.
//! Not a test: figures depend on the disk.
//!
//! `cargo run --release -p starling-broker --example store_bench -- [N] [DIR]`
//! (N defaults to 20,000; DIR, where the store files go, to
//! `target/store-bench`; batches of 1 with `sync` write at most 2,000 messages,
//! one fsync each).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_broker::router::Subscription;
use starling_broker::storage::{
    Change, Durability, MemoryStore, MessageId, SessionExpiry, SqliteStore, Store, StoredDelivery,
    StoredMessage, StoredSession,
};
use starling_proto::property::PublishProperties;
use starling_proto::{MqttString, QoS, SubscriptionOptions, TopicFilter, TopicName};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let dir = args
        .next()
        .map_or_else(|| PathBuf::from("target/store-bench"), PathBuf::from);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{n} QoS 1 messages of 64 bytes, each stored and queued for one offline session"
    )?;
    writeln!(
        out,
        "{:<14} {:>6} {:>9} {:>12}",
        "engine", "batch", "messages", "msgs/s"
    )?;
    let engines: [(&str, Option<Durability>); 4] = [
        ("sqlite sync", Some(Durability::Sync)),
        (
            "sqlite 100ms",
            Some(Durability::Periodic(Duration::from_millis(100))),
        ),
        ("sqlite off", Some(Durability::Off)),
        ("memory", None),
    ];
    for (name, durability) in engines {
        for batch in [1, 64, 1024] {
            let count = if batch == 1 && durability == Some(Durability::Sync) {
                n.min(2_000)
            } else {
                n
            };
            let rate = match durability {
                Some(durability) => {
                    let path = dir.join(format!("{}-{batch}.db", name.replace(' ', "-")));
                    remove(&path);
                    let store = SqliteStore::open(&path, durability)?;
                    let rate = run(&store, durability, count, batch)?;
                    drop(store);
                    remove(&path);
                    rate
                }
                None => run(&MemoryStore::new(), Durability::Off, count, batch)?,
            };
            writeln!(out, "{name:<14} {batch:>6} {count:>9} {rate:>12.0}")?;
        }
    }
    Ok(())
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// Messages per second.
fn run(
    store: &dyn Store,
    durability: Durability,
    count: u64,
    batch: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let client = MqttString::from_static("subscriber");
    store.apply(&[Change::PutSession(StoredSession {
        client_id: client.clone(),
        expiry: SessionExpiry::Never,
        disconnected_at: None,
        will: None,
        subscriptions: vec![(
            TopicFilter::from_static("bench/#"),
            Subscription {
                options: SubscriptionOptions::new(QoS::AtLeastOnce),
                id: None,
            },
        )],
    })])?;
    let payload = Bytes::from(vec![b'x'; 64]);
    let topic = TopicName::from_static("bench/topic");
    let mut changes = Vec::with_capacity(2 * batch as usize);
    let mut last_sync = Instant::now();
    let start = Instant::now();
    let mut id = 1;
    while id <= count {
        changes.clear();
        for _ in 0..batch.min(count - id + 1) {
            changes.push(Change::PutMessage(
                MessageId(id),
                StoredMessage {
                    topic: topic.clone(),
                    payload: payload.clone(),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    properties: PublishProperties::default(),
                    expires_at: None,
                    publisher: None,
                },
            ));
            changes.push(Change::Enqueue(
                client.clone(),
                StoredDelivery {
                    message: MessageId(id),
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    subscription_ids: Vec::new(),
                    shared: None,
                },
            ));
            id += 1;
        }
        store.apply(&changes)?;
        if let Durability::Periodic(every) = durability {
            if last_sync.elapsed() >= every {
                store.sync()?;
                last_sync = Instant::now();
            }
        }
    }
    store.sync()?;
    Ok(count as f64 / start.elapsed().as_secs_f64())
}
