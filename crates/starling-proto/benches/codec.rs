//! Codec micro-benchmarks: a PUBLISH with a 64-byte payload decoded through the
//! streaming `Decoder` and encoded into a reused buffer, at QoS 0 and 1, in 3.1.1
//! and 5.0; and topic matching with `+` and `#`.
//!
//! Run with `cargo bench -p starling-proto --bench codec`. Every figure is per
//! packet (or per match): throughput is reported in elements.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use starling_proto::topic::{self, TopicFilter, TopicName};
use starling_proto::{Decoder, Delivery, Packet, PacketId, ProtocolVersion, Publish, Role};

const TOPIC: &str = "sensors/kitchen/temperature";

fn publish(delivery: Delivery) -> Packet {
    let mut publish = Publish::new(TopicName::from_static(TOPIC), Bytes::from(vec![0xA5; 64]));
    publish.delivery = delivery;
    Packet::Publish(publish)
}

/// The cases: (name, version, packet).
fn cases() -> Vec<(String, ProtocolVersion, Packet)> {
    let mut cases = Vec::new();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        for (qos, delivery) in [
            ("qos0", Delivery::AtMostOnce),
            ("qos1", Delivery::AtLeastOnce(PacketId::MIN)),
        ] {
            cases.push((format!("v{version}/{qos}"), version, publish(delivery)));
        }
    }
    cases
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_64B/encode");
    group.throughput(Throughput::Elements(1));
    for (name, version, packet) in cases() {
        let mut buf = BytesMut::with_capacity(packet.encoded_len(version));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&packet)
                    .encode(version, &mut buf)
                    .expect("the PUBLISH encodes");
                black_box(&buf);
            })
        });
    }
    group.finish();
}

/// Each iteration appends one encoded PUBLISH to a reused buffer (a copy of under
/// 100 bytes, as a socket read would) and takes the packet off with the `Decoder`.
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_64B/decode");
    group.throughput(Throughput::Elements(1));
    for (name, version, packet) in cases() {
        let mut wire = BytesMut::new();
        packet
            .encode(version, &mut wire)
            .expect("the PUBLISH encodes");
        let wire = wire.freeze();
        let mut decoder = Decoder::new(Role::Server, version);
        let mut buf = BytesMut::with_capacity(4096);
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                buf.extend_from_slice(black_box(&wire));
                let decoded = decoder.decode(&mut buf).expect("valid").expect("complete");
                black_box(decoded)
            })
        });
    }
    group.finish();
}

fn topic_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_match");
    group.throughput(Throughput::Elements(1));
    let filter = "sport/+/player/#";
    for (name, topic_name) in [
        ("hit", "sport/tennis/player/1/score"),
        ("miss_last_level", "sport/tennis/coach/1/score"),
    ] {
        assert_eq!(topic::matches(filter, topic_name), name == "hit");
        group.bench_function(BenchmarkId::new("str", name), |b| {
            b.iter(|| topic::matches(black_box(filter), black_box(topic_name)))
        });
    }
    let shared = TopicFilter::from_static("$share/group/sport/+/player/#");
    let topic_name = TopicName::from_static("sport/tennis/player/1/score");
    group.bench_function("shared_filter/hit", |b| {
        b.iter(|| black_box(&shared).matches(black_box(&topic_name)))
    });
    group.finish();
}

criterion_group!(benches, encode, decode, topic_match);
criterion_main!(benches);
