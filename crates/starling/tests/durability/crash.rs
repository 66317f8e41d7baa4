//! The crash test of issue 6: persistent QoS 1 and QoS 2 subscribers
//! offline, publishers at full speed, SIGKILL at a random moment, restart on
//! the same store, then the subscribers drain their queues.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use starling_client::{
    Client, ClientOptions, Direction, PacketObserver, PacketTrace, ReconnectPolicy,
};
use starling_proto::{Packet, ProtocolVersion, Publish, QoS};

use super::common::raw::{retained, text, Login, Raw, Recv};
use super::common::restartable::{Starling, Stop};
use super::common::WAIT;
use super::{publish_marker, resume};

/// Rounds of the crash test, each with its own kill moment.
const CRASH_ROUNDS: usize = 5;
/// Publishers per round: even ones MQTT 5.0 with a clean start that do not
/// reconnect (their unfinished publishes fail at the kill); odd ones MQTT
/// 3.1.1 with a persistent session that reconnect after the restart and
/// finish their flows (resending PUBLISH with DUP, and PUBREL).
const CRASH_PUBLISHERS: usize = 4;
/// Publishes each publisher keeps outstanding.
const CRASH_WINDOW: usize = 64;
/// Every so many, a publish is a retained one on the publisher's own topic.
const RETAIN_EVERY: u64 = 25;
/// A bound on one publisher's messages, so that a fast broker keeps the
/// drain short.
const CRASH_MAX_PER_PUBLISHER: u64 = 20_000;

/// What the publishers of one round sent and what the broker acknowledged.
#[derive(Default)]
struct Ledger {
    /// Every payload id handed to a publish.
    sent: HashSet<String>,
    /// Payload ids the broker acknowledged: PUBACK, or PUBREC for QoS 2,
    /// with a success code, as seen on the wire; and publishes whose future
    /// completed successfully (PUBACK / PUBCOMP).
    acked: HashSet<String>,
    /// When each PUBLISH was last written to the wire (a counter, in write
    /// order): the broker receives them in that order, which need not be the
    /// order of their sequence numbers (the publishes are concurrent tasks),
    /// and a resend after the restart comes after everything before it.
    written: HashMap<String, u64>,
    /// The next value of that counter.
    next_write: u64,
    /// How many times each PUBLISH was written (resends after the restart
    /// write it again).
    writes: HashMap<String, u32>,
    /// Publishes whose future completed successfully.
    completed: usize,
    /// Publishes whose future failed (their connection died at the kill).
    failed: usize,
    /// Every QoS flow packet each publisher wrote or read, in order: (publisher,
    /// packet identifier, what), printed for a lost message's identifier.
    wire: Vec<(usize, u16, String)>,
}

/// The payload id of publisher `n`'s message `seq`: "p{n}:{seq}".
fn payload_id(n: usize, seq: u64) -> String {
    format!("p{n}:{seq}")
}

/// The QoS, topic and retain flag of publisher `n`'s message `seq`.
fn crash_message(n: usize, seq: u64) -> (String, QoS, bool) {
    if seq % RETAIN_EVERY == 0 {
        (format!("crash/retained/p{n}"), QoS::AtLeastOnce, true)
    } else if seq % 2 == 0 {
        (format!("crash/data/p{n}"), QoS::AtLeastOnce, false)
    } else {
        (format!("crash/data/p{n}"), QoS::ExactlyOnce, false)
    }
}

/// Parses "p{n}:{seq}".
fn parse_id(id: &str) -> Option<(usize, u64)> {
    let (n, seq) = id.strip_prefix('p')?.split_once(':')?;
    Some((n.parse().ok()?, seq.parse().ok()?))
}

/// The guarantee of issue 6: a message the broker acknowledged (PUBACK, or
/// PUBREC for QoS 2) is never lost by a crash of the broker, and a QoS 2
/// message is never delivered twice [MQTT-4.3.3-10], whatever the moment of
/// the SIGKILL. Persistent sessions and their subscriptions are restored
/// [MQTT-3.1.2-4], retained messages too [MQTT-3.3.1-5].
#[test]
fn sigkill_mid_stream_loses_no_acknowledged_message() {
    let seed = std::env::var("STARLING_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("crash test: seed {seed} (STARLING_CRASH_SEED={seed} replays these kill moments)");
    let mut rng = StdRng::seed_from_u64(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for round in 1..=CRASH_ROUNDS {
        let kill_after = Duration::from_millis(rng.random_range(50..=1500));
        eprintln!("crash test round {round}: SIGKILL {kill_after:?} after publishing starts (seed {seed})");
        crash_round(
            &runtime,
            &format!("crash-{round}"),
            kill_after,
            Mix::default(),
        );
    }
}

/// Who takes part in a round beside the four publishers and the two offline
/// persistent subscribers (QoS 1 over 3.1.1, QoS 2 over 5.0). The crash test
/// runs without these; the torture test (`torture.rs`) with all of them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mix {
    /// Two offline persistent members of a shared subscription
    /// (`$share/g/crash/data/+`, QoS 2): between them they receive every
    /// acknowledged message, none twice.
    pub(crate) shared: bool,
    /// A persistent QoS 1 subscriber online during the stream, taken over by
    /// a new connection of the same client every few hundred milliseconds:
    /// over all its connections it receives every acknowledged message.
    pub(crate) takeover: bool,
    /// Publisher 1 is MQTT 5.0 with a persistent session (Session Expiry
    /// Interval) that resumes after the restart, instead of 3.1.1.
    pub(crate) v5_resume: bool,
}

pub(crate) fn crash_round(
    runtime: &tokio::runtime::Runtime,
    label: &str,
    kill_after: Duration,
    mix: Mix,
) {
    // No queue limit: a message dropped from a full queue would be lost by
    // design, not by the crash.
    // STARLING_CRASH_DEBUG=1 logs every packet the broker reads and writes,
    // to read beside a failure's wire history (it slows the broker down).
    let debug = if std::env::var_os("STARLING_CRASH_DEBUG").is_some() {
        "\nlog_type all"
    } else {
        ""
    };
    let mut broker = Starling::new(label, &format!("max_queued_messages 0{debug}")).started();
    let port = broker.port();
    let sub_q1 = Login::v311("crash-q1").persistent();
    let sub_q2 = Login::v5("crash-q2").persistent();
    let shared: Vec<Login> = if mix.shared {
        vec![
            Login::v5("crash-g1").persistent(),
            Login::v5("crash-g2").persistent(),
        ]
    } else {
        Vec::new()
    };
    let mut offline = vec![
        (&sub_q1, "crash/data/+", QoS::AtLeastOnce),
        (&sub_q2, "crash/data/+", QoS::ExactlyOnce),
    ];
    for member in &shared {
        offline.push((member, "$share/g/crash/data/+", QoS::ExactlyOnce));
    }
    for (login, filter, qos) in offline {
        let (mut sub, _) = Raw::connect(port, login.clone());
        sub.subscribe_one(filter, qos);
        sub.disconnect();
    }
    let taken_over = mix
        .takeover
        .then(|| Takeover::start(port, Login::v5("crash-t").persistent()));
    let (mut retainer, _) = Raw::connect(port, Login::v5("crash-retainer"));
    for i in 0..3 {
        let code = retainer.publish(retained(
            &format!("crash/retained/base-{i}"),
            format!("base-{i}"),
            QoS::AtLeastOnce,
        ));
        assert!(!code.is_error(), "retained base-{i} refused: {code}");
    }
    retainer.disconnect();

    // The publishers, at full speed; SIGKILL mid-stream; restart.
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..CRASH_PUBLISHERS)
        .map(|n| {
            runtime.spawn(publish_stream(
                port,
                n,
                mix.v5_resume && n == 1,
                Arc::clone(&ledger),
                Arc::clone(&stop),
                Arc::clone(&connected),
            ))
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while connected.load(Ordering::SeqCst) < CRASH_PUBLISHERS {
        assert!(Instant::now() < deadline, "the publishers did not connect");
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(kill_after);
    broker.stop(Stop::Kill);
    stop.store(true, Ordering::SeqCst);
    let taken_over = taken_over.map(Takeover::finish);
    let (sent_at_kill, acked_at_kill) = {
        let ledger = ledger.lock().unwrap();
        (ledger.sent.len(), ledger.acked.clone())
    };
    broker.start();
    for publisher in publishers {
        runtime
            .block_on(publisher)
            .expect("a publisher task panicked");
    }
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    eprintln!(
        "round {label}: {} sent ({sent_at_kill} before the kill), {} acknowledged, \
         {} completed, {} failed",
        ledger.sent.len(),
        ledger.acked.len(),
        ledger.completed,
        ledger.failed
    );
    if ledger.acked.is_empty() {
        eprintln!(
            "round {label}: nothing was acknowledged before the kill \
             ({kill_after:?}); only exactly-once is checked"
        );
    }

    // The subscribers come back: their sessions were restored, and their
    // queues hold every acknowledged message.
    let s1 = resume(port, sub_q1, Stop::Kill);
    let s2 = resume(port, sub_q2, Stop::Kill);
    let members: Vec<Raw> = shared
        .into_iter()
        .map(|login| resume(port, login, Stop::Kill))
        .collect();
    let t = taken_over
        .as_ref()
        .map(|(login, _)| resume(port, login.clone(), Stop::Kill));
    publish_marker(port, "crash/data/marker", QoS::ExactlyOnce);
    let (drained_q1, drained_q2, drained_members, drained_t) = thread::scope(|scope| {
        let q1 = scope.spawn(move || {
            let mut s1 = s1;
            s1.messages_until(b"marker")
        });
        let q2 = scope.spawn(move || {
            let mut s2 = s2;
            s2.messages_until(b"marker")
        });
        // A shared group's marker goes to one member: the members are
        // drained until the group has it, then read out.
        let group = scope.spawn(move || drain_group(members));
        let t = scope.spawn(move || t.map(|mut t| t.messages_until(b"marker").0));
        (
            q1.join().expect("drain q1"),
            q2.join().expect("drain q2"),
            group.join().expect("drain the shared group"),
            t.join().expect("drain the taken-over subscriber"),
        )
    });
    // The subscriptions kept their QoS: the marker (QoS 2) comes at each.
    assert_eq!(
        drained_q1.1.qos(),
        QoS::AtLeastOnce,
        "crash-q1's subscription QoS"
    );
    assert_eq!(
        drained_q2.1.qos(),
        QoS::ExactlyOnce,
        "crash-q2's subscription QoS"
    );
    let mut problems = check_drained(
        "crash-q1 (QoS 1)",
        &ledger,
        &acked_at_kill,
        &drained_q1.0,
        false,
    );
    problems.extend(check_drained(
        "crash-q2 (QoS 2)",
        &ledger,
        &acked_at_kill,
        &drained_q2.0,
        true,
    ));
    if mix.shared {
        // Between them, everything and nothing twice; in order per member.
        let union: Vec<Publish> = drained_members.iter().flatten().cloned().collect();
        problems.extend(
            check_drained(
                "the shared group $share/g (QoS 2, two members)",
                &ledger,
                &acked_at_kill,
                &union,
                true,
            )
            .into_iter()
            .filter(|p| !p.contains("out of order")),
        );
        for (i, member) in drained_members.iter().enumerate() {
            problems.extend(check_order(&format!("crash-g{}", i + 1), &ledger, member));
        }
    }
    if let (Some((_, mut before)), Some(after)) = (taken_over, drained_t) {
        // At least once over all its connections: duplicates and order
        // across takeovers are not checked.
        before.extend(after);
        let mut seen = HashSet::new();
        before.retain(|m| seen.insert(text(m)));
        problems.extend(
            check_drained(
                "crash-t (QoS 1, taken over)",
                &ledger,
                &acked_at_kill,
                &before,
                false,
            )
            .into_iter()
            .filter(|p| !p.contains("out of order")),
        );
    }
    problems.extend(check_crash_retained(port, &ledger));
    assert!(
        problems.is_empty(),
        "round {label} (SIGKILL {kill_after:?} after publishing started):\n  {}",
        problems.join("\n  ")
    );
}

/// One publisher of the crash test: publishes until told to stop (at the
/// kill), keeping [`CRASH_WINDOW`] publishes outstanding, and records what
/// the broker acknowledged in `ledger`.
async fn publish_stream(
    port: u16,
    n: usize,
    v5_resume: bool,
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
) {
    let reconnects = n % 2 == 1;
    // Packet identifier -> payload id of the PUBLISH that used it last;
    // acknowledgements seen on the wire mark that payload acknowledged.
    let by_packet_id: Mutex<HashMap<u16, String>> = Mutex::new(HashMap::new());
    let observed = Arc::clone(&ledger);
    let observer: PacketObserver = Arc::new(move |trace: &PacketTrace<'_>| {
        let flow = match trace.packet {
            Packet::Publish(p) => p.packet_id().map(|id| {
                (
                    id.get(),
                    format!(
                        "PUBLISH dup={} {}",
                        u8::from(p.dup),
                        String::from_utf8_lossy(&p.payload)
                    ),
                )
            }),
            Packet::PubAck(a) => Some((a.packet_id.get(), format!("PUBACK {}", a.reason_code))),
            Packet::PubRec(a) => Some((a.packet_id.get(), format!("PUBREC {}", a.reason_code))),
            Packet::PubRel(a) => Some((a.packet_id.get(), format!("PUBREL {}", a.reason_code))),
            Packet::PubComp(a) => Some((a.packet_id.get(), format!("PUBCOMP {}", a.reason_code))),
            Packet::ConnAck(c) => Some((0, format!("CONNACK present={}", c.session_present))),
            _ => None,
        };
        if let Some((id, what)) = flow {
            let arrow = match trace.direction {
                Direction::Sent => "->",
                Direction::Received => "<-",
            };
            observed
                .lock()
                .unwrap()
                .wire
                .push((n, id, format!("{arrow} {what}")));
        }
        let acked = match (trace.direction, trace.packet) {
            (Direction::Sent, Packet::Publish(publish)) => {
                let payload = String::from_utf8_lossy(&publish.payload).into_owned();
                {
                    let mut ledger = observed.lock().unwrap();
                    let at = ledger.next_write;
                    ledger.next_write += 1;
                    ledger.written.insert(payload.clone(), at);
                    *ledger.writes.entry(payload.clone()).or_default() += 1;
                }
                if let Some(id) = publish.packet_id() {
                    by_packet_id.lock().unwrap().insert(id.get(), payload);
                }
                None
            }
            (Direction::Received, Packet::PubAck(ack)) if !ack.reason_code.is_error() => {
                Some(ack.packet_id)
            }
            (Direction::Received, Packet::PubRec(rec)) if !rec.reason_code.is_error() => {
                Some(rec.packet_id)
            }
            _ => None,
        };
        if let Some(id) = acked {
            if let Some(payload) = by_packet_id.lock().unwrap().get(&id.get()) {
                observed.lock().unwrap().acked.insert(payload.clone());
            }
        }
    });
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut options = ClientOptions::new(&url)
        .expect("a valid URL")
        .client_id(format!("crash-pub-{n}"))
        .packet_observer(observer);
    options = if v5_resume {
        options
            .version(ProtocolVersion::V5)
            .clean_start(false)
            .session_expiry(Duration::from_secs(3600))
            .reconnect(ReconnectPolicy::Backoff {
                min: Duration::from_millis(50),
                max: Duration::from_millis(200),
            })
    } else if reconnects {
        options
            .version(ProtocolVersion::V3_1_1)
            .clean_start(false)
            .reconnect(ReconnectPolicy::Backoff {
                min: Duration::from_millis(50),
                max: Duration::from_millis(200),
            })
    } else {
        options
            .version(ProtocolVersion::V5)
            .reconnect(ReconnectPolicy::Off)
    };
    let (client, mut events) = Client::connect(options)
        .await
        .unwrap_or_else(|e| panic!("crash-pub-{n} cannot connect: {e}"));
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    connected.fetch_add(1, Ordering::SeqCst);

    let mut outstanding = tokio::task::JoinSet::new();
    let record = |result: Result<(String, Result<_, _>), _>| {
        let (id, outcome): (
            String,
            Result<starling_client::Published, starling_client::Error>,
        ) = result.expect("a publish task panicked");
        let mut ledger = ledger.lock().unwrap();
        match outcome {
            Ok(_) => {
                ledger.completed += 1;
                ledger.acked.insert(id);
            }
            Err(_) => ledger.failed += 1,
        }
    };
    let mut seq = 0;
    while !stop.load(Ordering::SeqCst) && seq < CRASH_MAX_PER_PUBLISHER {
        if outstanding.len() >= CRASH_WINDOW {
            if let Some(result) = outstanding.join_next().await {
                record(result);
            }
        }
        let id = payload_id(n, seq);
        let (topic, qos, retain) = crash_message(n, seq);
        ledger.lock().unwrap().sent.insert(id.clone());
        let client = client.clone();
        outstanding.spawn(async move {
            let outcome = client.publish(&topic, id.clone(), qos, retain).await;
            (id, outcome)
        });
        seq += 1;
    }
    // After the kill: publishers that reconnect finish their flows with the
    // restarted broker; the others' publishes fail.
    let finish = async {
        while let Some(result) = outstanding.join_next().await {
            record(result);
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), finish)
        .await
        .is_err()
    {
        eprintln!(
            "crash-pub-{n}: {} publishes still unfinished 30 s after the kill; not counted",
            outstanding.len()
        );
        outstanding.abort_all();
    }
    let _ = client.disconnect().await;
}

/// Every acknowledged data message arrived at the subscriber; nothing
/// arrived that was never sent; with `exactly_once`, no message published
/// at QoS 2 arrived twice [MQTT-4.3.3-10]. What is wrong, in words.
fn check_drained(
    who: &str,
    ledger: &Ledger,
    acked_at_kill: &HashSet<String>,
    messages: &[Publish],
    exactly_once: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for message in messages {
        let id = text(message);
        if !(message.topic.as_str().starts_with("crash/data/p") && ledger.sent.contains(&id)) {
            problems.push(format!(
                "{who} received {id:?} on {}, which was never published",
                message.topic.as_str()
            ));
        }
        *counts.entry(id).or_default() += 1;
    }
    let mut missing: Vec<String> = ledger
        .acked
        .iter()
        .filter(|id| {
            let (_, seq) = parse_id(id).expect("a payload id");
            seq % RETAIN_EVERY != 0 && !counts.contains_key(*id)
        })
        .map(|id| {
            let (n, seq) = parse_id(id).expect("a payload id");
            let when = if acked_at_kill.contains(id) {
                "acknowledged before the kill"
            } else {
                "acknowledged after the restart"
            };
            format!("{id} (QoS {}, {when})", crash_message(n, seq).1)
        })
        .collect();
    missing.sort();
    for line in missing.iter().take(3) {
        eprintln!("{who}: the wire history of {line}:");
        for entry in wire_history(ledger, line.split(' ').next().unwrap_or_default()) {
            eprintln!("    {entry}");
        }
    }
    if !missing.is_empty() {
        problems.push(format!(
            "{who} lacks {} acknowledged messages after the SIGKILL, e.g. {:?} ({} received)",
            missing.len(),
            &missing[..missing.len().min(10)],
            messages.len()
        ));
    }
    if exactly_once {
        let twice: Vec<_> = counts
            .iter()
            .filter(|(id, n)| {
                let (publisher, seq) = parse_id(id).expect("a payload id");
                **n > 1 && crash_message(publisher, seq).1 == QoS::ExactlyOnce
            })
            .take(10)
            .collect();
        if !twice.is_empty() {
            problems.push(format!(
                "{who} received QoS 2 messages more than once [MQTT-4.3.3-10]: {twice:?}"
            ));
        }
    }
    problems.extend(check_order(who, ledger, messages));
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    eprintln!(
        "{who} received {} messages ({duplicates} duplicates)",
        messages.len()
    );
    problems
}

/// Per publisher, the messages a subscriber received first come in the
/// order the broker received them [MQTT-4.6.0-6]: the order they were written
/// to the wire, for messages written once (a resend after the restart comes
/// after everything, and its first copy may have been queued before).
fn check_order(who: &str, ledger: &Ledger, messages: &[Publish]) -> Vec<String> {
    let mut last: HashMap<usize, (u64, String)> = HashMap::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for message in messages {
        let id = text(message);
        if !seen.insert(id.clone()) || ledger.writes.get(&id) != Some(&1) {
            continue;
        }
        let (Some((n, _)), Some(&at)) = (parse_id(&id), ledger.written.get(&id)) else {
            continue;
        };
        if let Some((before, earlier)) = last.get(&n) {
            if *before > at {
                let place = |id: &str| {
                    let i = messages.iter().position(|m| text(m) == id);
                    let m = i.map(|i| &messages[i]);
                    format!(
                        "{id} #{i:?} of {} (dup {:?}, QoS {:?}, written #{:?}, acked {})",
                        messages.len(),
                        m.map(|m| m.dup),
                        m.map(|m| m.qos()),
                        ledger.written.get(id),
                        ledger.acked.contains(id)
                    )
                };
                problems.push(format!(
                    "{who} received {id} after {earlier}, which was written after it: out of order \
                     [MQTT-4.6.0-6]; {} / {}",
                    place(earlier),
                    place(&id)
                ));
            }
        }
        last.insert(n, (at, id));
    }
    problems.truncate(5);
    problems
}

/// Drains offline members of one shared group until one of them has the
/// marker, then the others; what each received, in order.
fn drain_group(mut members: Vec<Raw>) -> Vec<Vec<Publish>> {
    let mut all: Vec<Vec<Publish>> = members.iter().map(|_| Vec::new()).collect();
    if members.is_empty() {
        return all;
    }
    let deadline = Instant::now() + super::common::WAIT * 4;
    let mut marked = false;
    while !marked {
        assert!(
            Instant::now() < deadline,
            "no member of the shared group received the marker"
        );
        let mut quiet = true;
        for (member, got) in members.iter_mut().zip(&mut all) {
            while let Some(message) = member.next_message(Duration::from_millis(20)) {
                quiet = false;
                if message.payload == b"marker"[..] {
                    marked = true;
                } else {
                    got.push(message);
                }
            }
        }
        if quiet && marked {
            break;
        }
    }
    // What else the others had queued comes at once: read until quiet.
    for (member, got) in members.iter_mut().zip(&mut all) {
        while let Some(message) = member.next_message(Duration::from_millis(300)) {
            got.push(message);
        }
    }
    all
}

/// A persistent QoS 1 subscriber online during the stream, taken over by a
/// new connection of the same client at random moments; every message any
/// of its connections received, acknowledged as they came.
struct Takeover {
    stop: Arc<AtomicBool>,
    login: Login,
    thread: thread::JoinHandle<Vec<Publish>>,
}

impl Takeover {
    fn start(port: u16, login: Login) -> Takeover {
        let (mut first, _) = Raw::connect(port, login.clone());
        first.subscribe_one("crash/data/+", QoS::AtLeastOnce);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, login) = (Arc::clone(&stop), login.clone());
            thread::spawn(move || {
                let mut received = Vec::new();
                let mut takeovers = 0;
                let mut current = Some(first);
                let mut rng = StdRng::seed_from_u64(port.into());
                while !stop.load(Ordering::SeqCst) {
                    let until = Instant::now() + Duration::from_millis(rng.random_range(50..400));
                    if let Some(conn) = current.as_mut() {
                        if !read_for(conn, until, &mut received) {
                            current = None;
                        }
                    } else {
                        thread::sleep(Duration::from_millis(20));
                    }
                    // The takeover: a new connection of the same client.
                    if let Ok((new, _)) = Raw::try_connect(port, login.clone()) {
                        takeovers += 1;
                        if let Some(mut old) = current.replace(new) {
                            read_for(
                                &mut old,
                                Instant::now() + Duration::from_secs(1),
                                &mut received,
                            );
                        }
                    }
                }
                eprintln!("crash-t: {takeovers} takeovers during the stream");
                received
            })
        };
        Takeover {
            stop,
            login,
            thread,
        }
    }

    /// Stops taking over (the broker was killed); the login and what came.
    fn finish(self) -> (Login, Vec<Publish>) {
        self.stop.store(true, Ordering::SeqCst);
        let received = self.thread.join().expect("the takeover thread panicked");
        (self.login, received)
    }
}

/// Reads `conn` until `until`, acknowledging and keeping its messages;
/// false once the broker closed it (a takeover's DISCONNECT 0x8E, or the kill).
fn read_for(conn: &mut Raw, until: Instant, received: &mut Vec<Publish>) -> bool {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match conn.recv(left) {
            Recv::Packet(Packet::Publish(publish)) => {
                // QoS 1 (the subscription's); an ack to a dead socket is moot.
                if let Some(id) = publish.packet_id() {
                    let _ = conn.try_send(Packet::PubAck(starling_proto::PubAck::new(id)));
                }
                received.push(publish);
            }
            Recv::Packet(_) => {}
            Recv::Timeout => return true,
            Recv::Closed => return false,
        }
    }
}

/// What publisher `n` wrote and read on the packet identifier(s) that
/// carried payload `id`, and its CONNACKs, in order: how a lost message's
/// flow went, to read beside the broker's log.
fn wire_history(ledger: &Ledger, id: &str) -> Vec<String> {
    let Some((n, _)) = parse_id(id) else {
        return Vec::new();
    };
    let suffix = format!(" {id}");
    let ids: HashSet<u16> = ledger
        .wire
        .iter()
        .filter(|(p, _, what)| *p == n && what.ends_with(&suffix))
        .map(|(_, packet_id, _)| *packet_id)
        .collect();
    ledger
        .wire
        .iter()
        .enumerate()
        .filter(|(_, (p, packet_id, _))| *p == n && (*packet_id == 0 || ids.contains(packet_id)))
        .map(|(at, (_, packet_id, what))| format!("#{at} id {packet_id}: {what}"))
        .collect()
}

/// The retained messages after the crash: the three set before the stream,
/// exactly; for each publisher, one of its own written to the wire no
/// earlier than the last acknowledged one [MQTT-3.3.1-5]. What is wrong, in
/// words.
fn check_crash_retained(port: u16, ledger: &Ledger) -> Vec<String> {
    let mut problems = Vec::new();
    let (mut check, _) = Raw::connect(port, Login::v5("crash-retained-check"));
    check.subscribe_one("crash/retained/#", QoS::AtLeastOnce);
    publish_marker(port, "crash/retained/marker", QoS::AtLeastOnce);
    let (messages, _) = check.messages_until(b"marker");
    check.disconnect();
    let found: HashMap<String, String> = messages
        .iter()
        .map(|m| (m.topic.as_str().to_owned(), text(m)))
        .collect();
    for i in 0..3 {
        let topic = format!("crash/retained/base-{i}");
        if found.get(&topic) != Some(&format!("base-{i}")) {
            problems.push(format!(
                "retained base-{i} lost [MQTT-3.3.1-5]: {topic} holds {:?}",
                found.get(&topic)
            ));
        }
    }
    for n in 0..CRASH_PUBLISHERS {
        let written = |id: &String| ledger.written.get(id).copied().unwrap_or(0);
        let last_acked = ledger
            .acked
            .iter()
            .filter(|id| parse_id(id).is_some_and(|(p, seq)| p == n && seq % RETAIN_EVERY == 0))
            .max_by_key(|id| written(id));
        let kept = found.get(&format!("crash/retained/p{n}"));
        match (last_acked, kept) {
            (Some(last), None) => problems.push(format!(
                "{last} was acknowledged, and no retained message of p{n} is kept \
                 [MQTT-3.3.1-5]"
            )),
            (Some(last), Some(kept))
                if written(kept) < written(last) || !ledger.sent.contains(kept) =>
            {
                problems.push(format!(
                    "p{n}'s retained message is {kept}, written before {last}, which was \
                     acknowledged [MQTT-3.3.1-5]"
                ));
            }
            (None, Some(kept)) if !ledger.sent.contains(kept) => {
                problems.push(format!("retained {kept} was never published"));
            }
            _ => {}
        }
    }
    problems
}
