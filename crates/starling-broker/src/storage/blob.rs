//! The byte layout of the few composite values a store keeps in one column: a
//! message's v5 properties and a delivery's subscription identifiers. Our own
//! layout, not the wire's, so it stays stable whatever the codec does; every
//! integer is big-endian, every string and byte string is a u32 length and its
//! bytes.
//!
//! Properties are tagged: 1 Payload Format Indicator (u8), 2 Message Expiry
//! Interval (u32), 3 Response Topic, 4 Correlation Data, 5 Content Type, 6 a
//! User Property (name, value). A Topic Alias and Subscription Identifiers are
//! never stored.

use bytes::Bytes;
use starling_proto::property::PublishProperties;
use starling_proto::{MqttString, SubscriptionId, TopicName, UserProperty};

pub(crate) fn encode_properties(props: &PublishProperties) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(utf8) = props.payload_format_indicator {
        out.push(1);
        out.push(u8::from(utf8));
    }
    if let Some(secs) = props.message_expiry_interval {
        out.push(2);
        out.extend_from_slice(&secs.to_be_bytes());
    }
    if let Some(topic) = &props.response_topic {
        out.push(3);
        put_bytes(&mut out, topic.as_str().as_bytes());
    }
    if let Some(data) = &props.correlation_data {
        out.push(4);
        put_bytes(&mut out, data);
    }
    if let Some(content_type) = &props.content_type {
        out.push(5);
        put_bytes(&mut out, content_type.as_str().as_bytes());
    }
    for property in &props.user_properties {
        out.push(6);
        put_bytes(&mut out, property.name.as_str().as_bytes());
        put_bytes(&mut out, property.value.as_str().as_bytes());
    }
    out
}

pub(crate) fn decode_properties(mut buf: &[u8]) -> Result<PublishProperties, String> {
    let mut props = PublishProperties::default();
    while let Some((&tag, rest)) = buf.split_first() {
        buf = rest;
        match tag {
            1 => props.payload_format_indicator = Some(take(&mut buf, 1)?[0] != 0),
            2 => {
                let bytes = take(&mut buf, 4)?;
                props.message_expiry_interval =
                    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
            }
            3 => {
                let topic = string(take_bytes(&mut buf)?)?;
                let topic = TopicName::new(topic).map_err(|e| format!("response topic: {e}"))?;
                props.response_topic = Some(topic);
            }
            4 => props.correlation_data = Some(Bytes::copy_from_slice(take_bytes(&mut buf)?)),
            5 => props.content_type = Some(string(take_bytes(&mut buf)?)?),
            6 => {
                let name = string(take_bytes(&mut buf)?)?;
                let value = string(take_bytes(&mut buf)?)?;
                props.user_properties.push(UserProperty { name, value });
            }
            other => return Err(format!("unknown property tag {other}")),
        }
    }
    Ok(props)
}

pub(crate) fn encode_subscription_ids(ids: &[SubscriptionId]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.get().to_be_bytes()).collect()
}

pub(crate) fn decode_subscription_ids(buf: &[u8]) -> Result<Vec<SubscriptionId>, String> {
    if buf.len() % 4 != 0 {
        return Err(format!("subscription ids of {} bytes", buf.len()));
    }
    buf.chunks_exact(4)
        .map(|b| {
            let id = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            SubscriptionId::new(id).ok_or_else(|| format!("subscription id {id}"))
        })
        .collect()
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every value comes from a packet, so it is far below 4 GiB.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if buf.len() < n {
        return Err("properties end early".to_owned());
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_bytes<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = take(buf, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    take(buf, len)
}

fn string(bytes: &[u8]) -> Result<MqttString, String> {
    MqttString::from_bytes(Bytes::copy_from_slice(bytes)).map_err(|e| format!("string: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stored_property_round_trips() {
        let props = PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(3_600),
            response_topic: Some(TopicName::from_static("reply/here")),
            correlation_data: Some(Bytes::from_static(b"\x00\x01corr")),
            content_type: Some(MqttString::from_static("text/plain")),
            user_properties: vec![
                UserProperty {
                    name: MqttString::from_static("a"),
                    value: MqttString::from_static("1"),
                },
                UserProperty {
                    name: MqttString::from_static("a"),
                    value: MqttString::from_static("2"),
                },
            ],
            ..PublishProperties::default()
        };
        assert_eq!(decode_properties(&encode_properties(&props)), Ok(props));
        let empty = PublishProperties::default();
        assert!(encode_properties(&empty).is_empty());
        assert_eq!(decode_properties(&[]), Ok(empty));
    }

    #[test]
    fn truncated_or_unknown_properties_are_errors() {
        assert!(decode_properties(&[2, 0, 0]).is_err());
        assert!(decode_properties(&[3, 0, 0, 0, 9, b'a']).is_err());
        assert!(decode_properties(&[99]).is_err());
    }

    #[test]
    fn subscription_ids_round_trip() {
        let ids: Vec<_> = [1, 268_435_455]
            .into_iter()
            .filter_map(SubscriptionId::new)
            .collect();
        assert_eq!(
            decode_subscription_ids(&encode_subscription_ids(&ids)),
            Ok(ids)
        );
        assert!(decode_subscription_ids(&[0, 0, 0]).is_err());
        assert!(decode_subscription_ids(&[0, 0, 0, 0]).is_err());
    }
}
