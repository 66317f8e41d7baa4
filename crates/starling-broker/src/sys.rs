//! `$SYS/broker/...`: the broker's statistics, published as retained messages
//! every `sys_interval` under the topic names Mosquitto uses, so dashboards and
//! scripts written for Mosquitto read them unchanged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_proto::property::Props;
use starling_proto::{QoS, TopicName};

use crate::broker::Broker;
use crate::message::Message;
use crate::stats::Stats;

/// Exponentially decaying averages of a per-second rate over 1, 5 and 15
/// minutes, as Mosquitto's `load` topics report.
#[derive(Debug, Default, Clone, Copy)]
struct Load {
    one: f64,
    five: f64,
    fifteen: f64,
}

impl Load {
    fn update(&mut self, rate: f64, interval: Duration) {
        let secs = interval.as_secs_f64();
        for (value, window) in [
            (&mut self.one, 60.0),
            (&mut self.five, 300.0),
            (&mut self.fifteen, 900.0),
        ] {
            let k = (-secs / window).exp();
            *value = *value * k + rate * (1.0 - k);
        }
    }
}

/// Publishes `$SYS` topics every `interval` until the broker is dropped by all
/// other owners.
pub async fn run(broker: Arc<Broker>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let counters = |b: &Broker| {
        [
            Stats::get(&b.stats.messages_received),
            Stats::get(&b.stats.messages_sent),
            Stats::get(&b.stats.bytes_received),
            Stats::get(&b.stats.bytes_sent),
            Stats::get(&b.stats.clients_connected),
            b.persistence().map_or(0, |p| {
                p.stats().changes.load(std::sync::atomic::Ordering::Relaxed)
            }),
        ]
    };
    let mut last = counters(&broker);
    let mut loads = [Load::default(); 6];
    loop {
        ticker.tick().await;
        if Arc::strong_count(&broker) == 1 {
            return;
        }
        let now = counters(&broker);
        for (i, load) in loads.iter_mut().enumerate() {
            // The connected-clients load is a level, not a rate.
            let value = if i == 4 {
                now[i] as f64
            } else {
                now[i].saturating_sub(last[i]) as f64 / interval.as_secs_f64()
            };
            load.update(value, interval);
        }
        last = now;
        publish_all(&broker, &loads);
    }
}

fn publish_all(broker: &Broker, loads: &[Load; 6]) {
    let s = &broker.stats;
    let connected = Stats::get(&s.clients_connected);
    let total = broker.session_count() as u64;
    let mut values: Vec<(String, String)> = vec![
        (
            "version".into(),
            format!("starling version {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "uptime".into(),
            format!("{} seconds", broker.started.elapsed().as_secs()),
        ),
        ("clients/connected".into(), connected.to_string()),
        ("clients/active".into(), connected.to_string()),
        (
            "clients/disconnected".into(),
            total.saturating_sub(connected).to_string(),
        ),
        (
            "clients/inactive".into(),
            total.saturating_sub(connected).to_string(),
        ),
        ("clients/total".into(), total.to_string()),
        // Starling's own: logins refused, and those the failed-login delay
        // held back (`login_delay`).
        (
            "clients/logins/failed".into(),
            Stats::get(&broker.auth.logins_failed).to_string(),
        ),
        (
            "clients/logins/delayed".into(),
            Stats::get(&broker.auth.logins_delayed).to_string(),
        ),
        (
            "clients/maximum".into(),
            Stats::get(&s.clients_maximum).to_string(),
        ),
        (
            "messages/received".into(),
            Stats::get(&s.packets_received).to_string(),
        ),
        (
            "messages/sent".into(),
            Stats::get(&s.packets_sent).to_string(),
        ),
        (
            "publish/messages/received".into(),
            Stats::get(&s.messages_received).to_string(),
        ),
        (
            "publish/messages/sent".into(),
            Stats::get(&s.messages_sent).to_string(),
        ),
        (
            "publish/messages/dropped".into(),
            Stats::get(&s.publish_dropped).to_string(),
        ),
        (
            "bytes/received".into(),
            Stats::get(&s.bytes_received).to_string(),
        ),
        ("bytes/sent".into(), Stats::get(&s.bytes_sent).to_string()),
        (
            "subscriptions/count".into(),
            broker.subscription_count().to_string(),
        ),
        (
            "retained messages/count".into(),
            broker.retained_count().to_string(),
        ),
    ];
    // Starling's own: the store (issue 6). Sizes in bytes, times in microseconds.
    if let Some(persistence) = broker.persistence() {
        let st = persistence.stats();
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        values.extend([
            (
                "store/bytes".into(),
                persistence.store_size().unwrap_or(0).to_string(),
            ),
            ("store/batches".into(), get(&st.batches).to_string()),
            ("store/changes".into(), get(&st.changes).to_string()),
            ("store/failures".into(), get(&st.failures).to_string()),
            (
                "store/commit/last".into(),
                get(&st.last_commit_us).to_string(),
            ),
            (
                "store/commit/max".into(),
                get(&st.max_commit_us).to_string(),
            ),
            (
                "store/failing".into(),
                u8::from(persistence.failing().is_some()).to_string(),
            ),
        ]);
    }
    let names = [
        "publish/received",
        "publish/sent",
        "bytes/received",
        "bytes/sent",
        "connections",
        // The store's write rate, in changes per second.
        "store/changes",
    ];
    for (name, load) in names.iter().zip(loads) {
        if *name == "store/changes" && broker.persistence().is_none() {
            continue;
        }
        for (window, value) in [
            ("1min", load.one),
            ("5min", load.five),
            ("15min", load.fifteen),
        ] {
            values.push((format!("load/{name}/{window}"), format!("{value:.2}")));
        }
    }
    for (topic, value) in values {
        let Ok(topic) = TopicName::try_from(format!("$SYS/broker/{topic}").as_str()) else {
            continue;
        };
        broker.publish(Arc::new(Message {
            topic,
            payload: Bytes::from(value),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: Props::none(),
            expires_at: None::<Instant>,
            origin: None,
            publisher: None,
            stored_id: Default::default(),
        }));
    }
}
