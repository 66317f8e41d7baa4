//! The `-d` lines: what libmosquitto 2.0.11 logs for each packet its clients
//! send and receive, in its exact words, so that output compared with (or
//! parsed like) `mosquitto_pub -d` and `mosquitto_sub -d` matches.
//!
//! - `Client ID sending CONNECT`, then `Client ID received CONNACK (CODE)`: the
//!   3.x return code or the 5.0 reason code; ID is `(null)` while the client has
//!   no identifier (an MQTT 3.1.1 or 5.0 client that lets the broker assign one;
//!   5.0 learns it from the CONNACK);
//! - `Client ID sending PUBLISH (dDUP, qQOS, rRETAIN, mMID, 'TOPIC', ... (N bytes))`
//!   and the same with `received`; MID counts QoS 0 messages too when sending,
//!   and is 0 for a QoS 0 message received;
//! - the acknowledgements: `sending PUBACK (mMID, rcRC)`, `sending PUBREC (mMID,
//!   rcRC)`, `sending PUBREL (mMID)`, `sending PUBCOMP (mMID)`, `received PUBACK
//!   (Mid: MID, RC:RC)`, `received PUBREC (Mid: MID)`, `received PUBREL (Mid:
//!   MID)`, `received PUBCOMP (Mid: MID, RC:RC)`;
//! - one `sending SUBSCRIBE (Mid: MID, Topic: FILTER, QoS: Q, Options: 0xOO)` per
//!   filter (the options byte without its QoS bits, 0x00 before MQTT 5.0), then
//!   `received SUBACK`; one `sending UNSUBSCRIBE (Mid: MID, Topic: FILTER)` per
//!   filter, then `received UNSUBACK`;
//! - `sending PINGREQ`, `received PINGRESP`, `sending DISCONNECT`, and
//!   `Received DISCONNECT (RC)` (no client identifier) when an MQTT 5.0 broker
//!   disconnects.

use std::collections::HashMap;

use starling_client::{Direction, Packet, PacketTrace, ProtocolVersion, QoS, RetainHandling};
use starling_proto::Publish;

/// The packets a client sends in answer to one it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Answer {
    Ack,
    Rec,
    Rel,
    Comp,
}

/// Logs the answers to received packets where libmosquitto logs them: right
/// after the packet they answer, as it sends them while handling it.
///
/// The client library sends them a little later, with the rest of the batch
/// read (all PUBRELs after all the PUBRECs of one read, say); their lines are
/// given here when the packet they answer is received, and
/// [`Answers::already_logged`] then skips them when they are written. The
/// library's answers are exactly these: PUBACK and PUBREC with reason 0 for
/// every QoS 1 and 2 PUBLISH, PUBREL for every successful PUBREC, PUBCOMP for
/// every PUBREL. A packet sent again (a PUBREL after a reconnection) was not
/// announced and is logged when written.
#[derive(Debug, Default)]
pub(crate) struct Answers {
    announced: HashMap<(Answer, u16), usize>,
}

impl Answers {
    /// The line of the answer to received `trace`, if it has one.
    pub(crate) fn answer(&mut self, trace: &PacketTrace<'_>) -> Option<String> {
        let id = client_label(trace.client_id);
        let mid = trace.message_id;
        let (answer, line) = match trace.packet {
            Packet::Publish(p) if p.qos() == QoS::AtLeastOnce => (
                Answer::Ack,
                format!("Client {id} sending PUBACK (m{mid}, rc0)"),
            ),
            Packet::Publish(p) if p.qos() == QoS::ExactlyOnce => (
                Answer::Rec,
                format!("Client {id} sending PUBREC (m{mid}, rc0)"),
            ),
            Packet::PubRec(rec) if !rec.reason_code.is_error() => {
                (Answer::Rel, format!("Client {id} sending PUBREL (m{mid})"))
            }
            Packet::PubRel(_) => (
                Answer::Comp,
                format!("Client {id} sending PUBCOMP (m{mid})"),
            ),
            _ => return None,
        };
        *self.announced.entry((answer, mid)).or_default() += 1;
        Some(line)
    }

    /// Whether sent `trace` is an answer whose line was given already.
    pub(crate) fn already_logged(&mut self, trace: &PacketTrace<'_>) -> bool {
        let answer = match trace.packet {
            Packet::PubAck(_) => Answer::Ack,
            Packet::PubRec(_) => Answer::Rec,
            Packet::PubRel(_) => Answer::Rel,
            Packet::PubComp(_) => Answer::Comp,
            _ => return false,
        };
        let key = (answer, trace.message_id);
        match self.announced.get_mut(&key) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.announced.remove(&key);
                }
                true
            }
            None => false,
        }
    }
}

/// How libmosquitto shows a client identifier: `(null)` when there is none.
pub(crate) fn client_label(id: &str) -> &str {
    if id.is_empty() {
        "(null)"
    } else {
        id
    }
}

/// The PUBLISH summary both directions share, with `topic` standing for the
/// packet's (a Topic Alias resolved).
pub(crate) fn publish_line(
    id: &str,
    verb: &str,
    publish: &Publish,
    mid: u16,
    topic: &str,
) -> String {
    format!(
        "Client {} {verb} PUBLISH (d{}, q{}, r{}, m{mid}, '{topic}', ... ({} bytes))",
        client_label(id),
        u8::from(publish.dup),
        publish.qos().as_u8(),
        u8::from(publish.retain),
        publish.payload.len(),
    )
}

/// The lines Mosquitto logs for `trace` (one per filter for SUBSCRIBE and
/// UNSUBSCRIBE; none for what it does not log, such as AUTH).
pub(crate) fn lines(trace: &PacketTrace<'_>, version: ProtocolVersion) -> Vec<String> {
    let id = client_label(trace.client_id);
    let mid = trace.message_id;
    let one = |line: String| vec![line];
    match (trace.direction, trace.packet) {
        (Direction::Sent, Packet::Connect(_)) => one(format!("Client {id} sending CONNECT")),
        (Direction::Received, Packet::ConnAck(connack)) => {
            let code = if version.is_v5() {
                connack.reason_code.0
            } else {
                connack.reason_code.to_connect_return_code()
            };
            one(format!("Client {id} received CONNACK ({code})"))
        }
        (Direction::Sent, Packet::Publish(p)) => {
            one(publish_line(trace.client_id, "sending", p, mid, p.topic.as_str()))
        }
        (Direction::Received, Packet::Publish(p)) => {
            one(publish_line(trace.client_id, "received", p, mid, p.topic.as_str()))
        }
        (Direction::Sent, Packet::PubAck(a)) => one(format!(
            "Client {id} sending PUBACK (m{mid}, rc{})",
            a.reason_code.0
        )),
        (Direction::Sent, Packet::PubRec(a)) => one(format!(
            "Client {id} sending PUBREC (m{mid}, rc{})",
            a.reason_code.0
        )),
        (Direction::Sent, Packet::PubRel(_)) => one(format!("Client {id} sending PUBREL (m{mid})")),
        (Direction::Sent, Packet::PubComp(_)) => {
            one(format!("Client {id} sending PUBCOMP (m{mid})"))
        }
        (Direction::Received, Packet::PubAck(a)) => one(format!(
            "Client {id} received PUBACK (Mid: {mid}, RC:{})",
            a.reason_code.0
        )),
        (Direction::Received, Packet::PubRec(_)) => {
            one(format!("Client {id} received PUBREC (Mid: {mid})"))
        }
        (Direction::Received, Packet::PubRel(_)) => {
            one(format!("Client {id} received PUBREL (Mid: {mid})"))
        }
        (Direction::Received, Packet::PubComp(a)) => one(format!(
            "Client {id} received PUBCOMP (Mid: {mid}, RC:{})",
            a.reason_code.0
        )),
        (Direction::Sent, Packet::Subscribe(s)) => s
            .filters
            .iter()
            .map(|(filter, options)| {
                let flags = if version.is_v5() {
                    (u8::from(options.no_local) << 2)
                        | (u8::from(options.retain_as_published) << 3)
                        | (retain_handling(options.retain_handling) << 4)
                } else {
                    0
                };
                format!(
                    "Client {id} sending SUBSCRIBE (Mid: {mid}, Topic: {}, QoS: {}, Options: 0x{flags:02x})",
                    filter.as_str(),
                    options.qos.as_u8()
                )
            })
            .collect(),
        (Direction::Received, Packet::SubAck(_)) => one(format!("Client {id} received SUBACK")),
        (Direction::Sent, Packet::Unsubscribe(u)) => u
            .filters
            .iter()
            .map(|filter| {
                format!(
                    "Client {id} sending UNSUBSCRIBE (Mid: {mid}, Topic: {})",
                    filter.as_str()
                )
            })
            .collect(),
        (Direction::Received, Packet::UnsubAck(_)) => {
            one(format!("Client {id} received UNSUBACK"))
        }
        (Direction::Sent, Packet::PingReq) => one(format!("Client {id} sending PINGREQ")),
        (Direction::Received, Packet::PingResp) => one(format!("Client {id} received PINGRESP")),
        (Direction::Sent, Packet::Disconnect(_)) => one(format!("Client {id} sending DISCONNECT")),
        (Direction::Received, Packet::Disconnect(d)) => {
            one(format!("Received DISCONNECT ({})", d.reason_code.0))
        }
        _ => Vec::new(),
    }
}

fn retain_handling(handling: RetainHandling) -> u8 {
    match handling {
        RetainHandling::SendAtSubscribe => 0,
        RetainHandling::SendAtSubscribeIfNew => 1,
        RetainHandling::DoNotSend => 2,
    }
}

#[cfg(test)]
mod tests {
    use starling_client::{QoS, ReasonCode, SubscriptionOptions, TopicFilter, TopicName};
    use starling_proto::{ConnAck, Delivery, PacketId, PubAck, PubComp, PubRec, PubRel, Subscribe};

    use super::*;

    fn trace<'a>(
        direction: Direction,
        packet: &'a Packet,
        id: &'a str,
        mid: u16,
    ) -> PacketTrace<'a> {
        PacketTrace {
            direction,
            packet,
            client_id: id,
            message_id: mid,
        }
    }

    fn line(
        direction: Direction,
        packet: Packet,
        id: &str,
        mid: u16,
        v: ProtocolVersion,
    ) -> String {
        lines(&trace(direction, &packet, id, mid), v).join("\n")
    }

    #[test]
    fn the_exactly_once_session_reads_as_mosquitto_2_0_11() {
        let v = ProtocolVersion::V3_1_1;
        let pid = PacketId::new(1).unwrap();
        let mut publish = Publish::new(
            TopicName::try_from("sensors/drone03/speed/rotor/1").unwrap(),
            "362 f",
        );
        publish.delivery = Delivery::new(QoS::ExactlyOnce, pid);
        let publish = Packet::Publish(publish);
        let sent = |p: Packet| line(Direction::Sent, p, "", 1, v);
        let received = |p: Packet| line(Direction::Received, p, "", 1, v);
        assert_eq!(
            sent(Packet::Connect(Box::new(starling_proto::Connect::new(
                v,
                Default::default()
            )))),
            "Client (null) sending CONNECT"
        );
        assert_eq!(
            received(Packet::ConnAck(ConnAck::default())),
            "Client (null) received CONNACK (0)"
        );
        assert_eq!(
            sent(publish.clone()),
            "Client (null) sending PUBLISH (d0, q2, r0, m1, 'sensors/drone03/speed/rotor/1', ... (5 bytes))"
        );
        assert_eq!(
            received(Packet::PubRec(PubRec::new(pid))),
            "Client (null) received PUBREC (Mid: 1)"
        );
        assert_eq!(
            sent(Packet::PubRel(PubRel::new(pid))),
            "Client (null) sending PUBREL (m1)"
        );
        assert_eq!(
            received(Packet::PubComp(PubComp::new(pid))),
            "Client (null) received PUBCOMP (Mid: 1, RC:0)"
        );
        assert_eq!(
            sent(Packet::PubAck(PubAck::new(pid))),
            "Client (null) sending PUBACK (m1, rc0)"
        );
        let connack = ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        assert_eq!(
            received(Packet::ConnAck(connack.clone())),
            "Client (null) received CONNACK (5)"
        );
        assert_eq!(
            line(
                Direction::Received,
                Packet::ConnAck(connack),
                "c",
                0,
                ProtocolVersion::V5
            ),
            "Client c received CONNACK (135)"
        );
    }

    #[test]
    fn subscribe_logs_one_line_per_filter_with_v5_options() {
        let mut options = SubscriptionOptions::new(QoS::ExactlyOnce);
        options.retain_as_published = true;
        options.retain_handling = RetainHandling::DoNotSend;
        let subscribe = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            filters: vec![
                (TopicFilter::try_from("sensors/drone03/#").unwrap(), options),
                (TopicFilter::try_from("x/+").unwrap(), options),
            ],
            properties: Default::default(),
        };
        assert_eq!(
            line(Direction::Sent, Packet::Subscribe(subscribe.clone()), "s", 1, ProtocolVersion::V5),
            "Client s sending SUBSCRIBE (Mid: 1, Topic: sensors/drone03/#, QoS: 2, Options: 0x28)\n\
             Client s sending SUBSCRIBE (Mid: 1, Topic: x/+, QoS: 2, Options: 0x28)"
        );
        assert_eq!(
            line(Direction::Sent, Packet::Subscribe(subscribe), "s", 1, ProtocolVersion::V3_1_1),
            "Client s sending SUBSCRIBE (Mid: 1, Topic: sensors/drone03/#, QoS: 2, Options: 0x00)\n\
             Client s sending SUBSCRIBE (Mid: 1, Topic: x/+, QoS: 2, Options: 0x00)"
        );
    }
}
