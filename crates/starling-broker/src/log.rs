//! Packet summaries for `-v` logging, in the form Mosquitto's broker logs them
//! (`Received PUBLISH from sensor-7 (d0, q1, r0, m2, 'a/b', ... (14 bytes))`), so
//! that users' log greps keep working.

use starling_proto::Packet;

/// The target of connection messages: the `INFO` events of this target and
/// of the modules under it (a client connected, refused, disconnected, taken
/// over, timed out) are what mosquitto.conf's `connection_messages false`
/// leaves out of the log. Events elsewhere name it to join them.
pub const CONNECTIONS: &str = "starling_broker::connection";

/// Whether an event of `target` at `level` is a connection message.
pub fn is_connection_message(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::INFO
        && target
            .strip_prefix(CONNECTIONS)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// A one-line description of `packet`: its name and the fields Mosquitto shows.
pub fn describe(packet: &Packet) -> String {
    match packet {
        Packet::Publish(p) => format!(
            "PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos().as_u8(),
            u8::from(p.retain),
            p.packet_id().map_or(0, |id| id.get()),
            p.topic,
            p.payload.len()
        ),
        Packet::PubAck(p) => format!("PUBACK (m{}, rc{})", p.packet_id, p.reason_code.0),
        Packet::PubRec(p) => format!("PUBREC (m{}, rc{})", p.packet_id, p.reason_code.0),
        Packet::PubRel(p) => format!("PUBREL (m{})", p.packet_id),
        Packet::PubComp(p) => format!("PUBCOMP (m{})", p.packet_id),
        Packet::Subscribe(s) => {
            let filters: Vec<String> = s
                .filters
                .iter()
                .map(|(f, o)| format!("{} (QoS {})", f, o.qos.as_u8()))
                .collect();
            format!("SUBSCRIBE (Mid: {}) {}", s.packet_id, filters.join(", "))
        }
        Packet::SubAck(s) => format!("SUBACK (Mid: {})", s.packet_id),
        Packet::Unsubscribe(u) => format!("UNSUBSCRIBE (Mid: {})", u.packet_id),
        Packet::UnsubAck(u) => format!("UNSUBACK (Mid: {})", u.packet_id),
        Packet::ConnAck(c) => format!("CONNACK ({})", c.reason_code.0),
        Packet::Disconnect(d) => format!("DISCONNECT ({})", d.reason_code.0),
        other => other.packet_type().name().to_string(),
    }
}
