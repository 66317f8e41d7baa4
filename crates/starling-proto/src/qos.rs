//! Quality of service, packet identifiers, and `Delivery`, which ties them together
//! so that a QoS 0 message cannot carry a packet identifier and a QoS 1 or 2
//! message cannot lack one [MQTT-2.2.1-2, MQTT-2.2.1-3].

use std::fmt;
use std::num::NonZeroU16;

/// The three delivery guarantees of MQTT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once: fire and forget.
    #[default]
    AtMostOnce = 0,
    /// At least once: PUBLISH, PUBACK.
    AtLeastOnce = 1,
    /// Exactly once: PUBLISH, PUBREC, PUBREL, PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS whose wire value is `bits`, if it is 0, 1 or 2.
    pub const fn from_u8(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for QoS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A Packet Identifier: never zero on the wire [MQTT-2.2.1-3].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketId(NonZeroU16);

impl PacketId {
    /// The identifier `id`, or `None` for 0.
    pub const fn new(id: u16) -> Option<PacketId> {
        match NonZeroU16::new(id) {
            Some(id) => Some(PacketId(id)),
            None => None,
        }
    }

    /// The wire value.
    pub const fn get(self) -> u16 {
        self.0.get()
    }

    /// The identifier after this one, wrapping from 65,535 to 1.
    pub const fn next(self) -> PacketId {
        match NonZeroU16::new(self.0.get().wrapping_add(1)) {
            Some(id) => PacketId(id),
            None => PacketId(NonZeroU16::MIN),
        }
    }

    /// Identifier 1.
    pub const MIN: PacketId = PacketId(NonZeroU16::MIN);
}

impl fmt::Display for PacketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.get())
    }
}

/// The QoS of a PUBLISH together with the packet identifier that QoS 1 and 2 need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Delivery {
    /// QoS 0, no packet identifier.
    #[default]
    AtMostOnce,
    /// QoS 1 with its packet identifier.
    AtLeastOnce(PacketId),
    /// QoS 2 with its packet identifier.
    ExactlyOnce(PacketId),
}

impl Delivery {
    /// The QoS level.
    pub const fn qos(self) -> QoS {
        match self {
            Delivery::AtMostOnce => QoS::AtMostOnce,
            Delivery::AtLeastOnce(_) => QoS::AtLeastOnce,
            Delivery::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier, for QoS 1 and 2.
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Delivery::AtMostOnce => None,
            Delivery::AtLeastOnce(id) | Delivery::ExactlyOnce(id) => Some(id),
        }
    }

    /// `qos` with `id` when it needs one.
    pub const fn new(qos: QoS, id: PacketId) -> Delivery {
        match qos {
            QoS::AtMostOnce => Delivery::AtMostOnce,
            QoS::AtLeastOnce => Delivery::AtLeastOnce(id),
            QoS::ExactlyOnce => Delivery::ExactlyOnce(id),
        }
    }
}
