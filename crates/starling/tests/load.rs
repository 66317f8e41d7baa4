//! Limits under load (issue 17), against the `starling broker` process, whose
//! memory (`/proc/PID/status`) and file descriptors (`/proc/PID/fd`) the
//! tests read:
//! - a subscriber that never reads (its TCP window full) neither slows the
//!   other subscribers of its topic nor grows the broker beyond its queue
//!   limit;
//! - a storm of 10,000 connects and disconnects leaks no session and no
//!   file descriptor;
//! - a client that floods PINGREQ and never reads costs bounded memory.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::raw::{message, Login, Raw, Recv};
use common::restartable::Starling;
use starling_proto::{Delivery, Packet, QoS};

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of `pid`.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Messages published, 1 KiB each.
const MESSAGES: usize = 40_000;
const PAYLOAD: usize = 1024;

#[test]
fn a_subscriber_that_never_reads_slows_no_one_and_stays_within_its_queue_limit() {
    let broker = Starling::new(
        "stuck-subscriber",
        "persistence false\nmax_queued_messages 1000",
    )
    .started();
    let port = broker.port();
    let pid = broker.pid();

    // Subscribes and never reads again: once the kernel's buffers are full,
    // everything for it waits in its queue, which holds 1,000 messages.
    let (mut stuck, _) = Raw::connect(port, Login::v5("stuck"));
    stuck.subscribe_one("load/#", QoS::AtLeastOnce);
    let (mut good, _) = Raw::connect(port, Login::v5("good"));
    good.subscribe_one("load/#", QoS::AtLeastOnce);
    let reader = thread::spawn(move || {
        let mut next = 0;
        loop {
            let m = good.expect_message("the next message for the reading subscriber");
            if m.payload == b"marker"[..] {
                return next;
            }
            // [MQTT-4.6.0-6]: in order, none missing.
            let index = usize::from_be_bytes(m.payload[..8].try_into().unwrap());
            assert_eq!(
                index, next,
                "the reading subscriber lost or reordered messages"
            );
            next += 1;
        }
    });
    let rss_before = rss_kib(pid);

    let started = Instant::now();
    let (mut publisher, _) = Raw::connect(port, Login::v5("publisher"));
    for batch in (0..MESSAGES).collect::<Vec<_>>().chunks(20) {
        let mut ids = Vec::new();
        let packets: Vec<Packet> = batch
            .iter()
            .map(|&i| {
                let mut payload = vec![0u8; PAYLOAD];
                payload[..8].copy_from_slice(&i.to_be_bytes());
                let mut publish = message("load/x", payload, QoS::AtLeastOnce);
                let id = publisher.next_packet_id();
                publish.delivery = Delivery::new(QoS::AtLeastOnce, id);
                ids.push(id);
                Packet::Publish(publish)
            })
            .collect();
        publisher.send_all(packets);
        for id in ids {
            let code = publisher.wait_ack(id, QoS::AtLeastOnce);
            assert!(code.is_some_and(|c| !c.is_error()), "PUBACK: {code:?}");
        }
    }
    let published = started.elapsed();
    publisher.publish(message("load/x", "marker", QoS::AtLeastOnce));
    let received = reader.join().expect("the reading subscriber");
    assert_eq!(received, MESSAGES);

    // Publishers slowed by a 1 ms pause per message while a backed-up
    // subscriber holds them back (the behaviour fixed here) would take at
    // least 40 s; a loose bound, five times what a debug build needs here.
    assert!(
        published < Duration::from_secs(20),
        "publishing took {published:?}: the stuck subscriber slowed the publisher"
    );
    // Its queue (1,000 messages of 1 KiB) is what the broker holds for it:
    // 40 MiB were published, and holding them would grow it by more than
    // that. The allocator gives the pages of what was freed back within a
    // second or so (jemalloc's decay: .cargo/config.toml), not at once: what
    // counts is what the broker still holds then. The rest is buffers and
    // arenas, which on a loaded machine (the whole test suite on 2 cores)
    // reached 17 MiB once where 5 to 10 is usual: the bound leaves room for
    // that and still tells a bounded queue from an unbounded one.
    const BOUND_KIB: u64 = 24 * 1024;
    let settled = Instant::now() + Duration::from_secs(5);
    let grown_kib = loop {
        let grown_kib = rss_kib(pid).saturating_sub(rss_before);
        if grown_kib < BOUND_KIB || Instant::now() >= settled {
            break grown_kib;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        grown_kib < BOUND_KIB,
        "the broker grew by {grown_kib} KiB for a subscriber that does not read"
    );
    assert!(
        broker
            .current_log()
            .contains("Outgoing messages are being dropped for client stuck."),
        "the stuck subscriber's queue never reached its limit:\n{}",
        broker.current_log()
    );
    drop(stuck);
}

#[test]
fn a_storm_of_connects_and_disconnects_leaks_no_session_and_no_file_descriptor() {
    let broker = Starling::new("connect-storm", "persistence false\nsys_interval 1").started();
    let port = broker.port();
    let pid = broker.pid();
    let files_before = open_files(pid);

    const THREADS: usize = 4;
    const EACH: usize = 2_500;
    let storm: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for i in 0..EACH {
                    let id = format!("storm-{t}-{i}");
                    // Every kind of client and ending: 3.1.1 and 5.0, a
                    // DISCONNECT or the socket dropped, and some persistent
                    // 5.0 sessions with a Session Expiry Interval of 0.
                    let login = match i % 3 {
                        0 => Login::v311(&id),
                        1 => Login::v5(&id),
                        _ => Login::v5(&id).clean(false).session_expiry(0),
                    };
                    let (raw, _) = Raw::connect(port, login);
                    if i % 2 == 0 {
                        raw.disconnect();
                    } else {
                        raw.drop_connection();
                    }
                }
            })
        })
        .collect();
    for t in storm {
        t.join().expect("a storm thread");
    }

    // Every session ended with its connection: $SYS counts none but the
    // checker's own.
    let (mut check, _) = Raw::connect(port, Login::v311("storm-check"));
    check.subscribe_one("$SYS/broker/clients/total", QoS::AtMostOnce);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut total = String::new();
    while Instant::now() < deadline {
        if let Recv::Packet(Packet::Publish(p)) = check.recv(Duration::from_secs(2)) {
            total = String::from_utf8_lossy(&p.payload).into_owned();
            if total == "1" {
                break;
            }
        }
    }
    assert_eq!(
        total, "1",
        "sessions left after the storm ($SYS/broker/clients/total)"
    );
    drop(check);

    // And every socket was closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut files = open_files(pid);
    while files > files_before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
        files = open_files(pid);
    }
    assert!(
        files <= files_before,
        "{files} file descriptors after the storm, {files_before} before"
    );
    let log = broker.current_log();
    // (Beside the storm's: the harness's probe at start-up and the checker.)
    let accepted = log.matches("New client connected").count();
    assert!(
        accepted >= THREADS * EACH,
        "{accepted} storm clients accepted"
    );
}

#[test]
fn a_pingreq_flood_from_a_client_that_never_reads_costs_bounded_memory() {
    use std::io::Write;
    let broker = Starling::new("ping-flood", "persistence false").started();
    let port = broker.port();
    let pid = broker.pid();
    let rss_before = rss_kib(pid);
    // 64 KiB of PINGREQ (2 bytes each) per write, for 3 s, reading nothing:
    // the PINGRESPs fill the client's window, the broker stops reading it,
    // and then the client's writes block (a write timeout ends them).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut connect = bytes::BytesMut::new();
    Packet::Connect(Box::new(starling_proto::Connect::new(
        starling_proto::ProtocolVersion::V3_1_1,
        starling_proto::MqttString::try_from("flooder").unwrap(),
    )))
    .encode(starling_proto::ProtocolVersion::V3_1_1, &mut connect)
    .unwrap();
    stream.write_all(&connect).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pings = [0xC0u8, 0x00].repeat(32 * 1024);
    let until = Instant::now() + Duration::from_secs(3);
    let mut written = 0usize;
    let mut peak = rss_before;
    while Instant::now() < until {
        if stream.write_all(&pings).is_ok() {
            written += pings.len();
        }
        peak = peak.max(rss_kib(pid));
    }
    assert!(written > 0);
    let grown = peak.saturating_sub(rss_before);
    assert!(
        grown < 4 * 1024,
        "the broker grew by {grown} KiB for {written} bytes of PINGREQ it could not answer"
    );
    // The broker serves others meanwhile.
    let (mut other, ack) = Raw::connect(port, Login::v5("other"));
    assert!(!ack.reason_code.is_error());
    other.subscribe_one("still/here", QoS::AtMostOnce);
    drop(stream);
}
