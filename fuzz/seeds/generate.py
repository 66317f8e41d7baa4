#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets, byte by byte from the MQTT 3.1.1
and 5.0 specifications (not through starling-proto, so a codec bug cannot bend
its own seeds).

Run from anywhere: `python3 fuzz/seeds/generate.py`. The files it writes are
tracked; re-run it only to change them.
"""

import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def binary(data):
    return u16(len(data)) + data


def string(text):
    return binary(text.encode())


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


def properties(*props):
    body = b"".join(props)
    return varint(len(body)) + body


def prop(ident, value):
    return bytes([ident]) + value


def user_property(name, value):
    return prop(0x26, string(name) + string(value))


# CONNECT 3.1.1: clean session, will QoS 1 retained, user name and password.
CONNECT_V311_WILL = packet(
    0x10,
    string("MQTT")
    + bytes([4, 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02])
    + u16(60)
    + string("starling-seed")
    + string("clients/seed/status")
    + binary(b"offline")
    + string("user")
    + binary(b"secret"),
)

# CONNECT 5.0 with connect and will properties.
CONNECT_V5_PROPS = packet(
    0x10,
    string("MQTT")
    + bytes([5, 0x80 | 0x40 | 0x04 | 0x02])
    + u16(30)
    + properties(
        prop(0x11, u32(3600)),  # Session Expiry Interval
        prop(0x21, u16(20)),  # Receive Maximum
        prop(0x27, u32(65536)),  # Maximum Packet Size
        prop(0x22, u16(10)),  # Topic Alias Maximum
        prop(0x17, b"\x01"),  # Request Problem Information
        user_property("region", "eu"),
    )
    + string("seed5")
    + properties(
        prop(0x18, u32(5)),  # Will Delay Interval
        prop(0x01, b"\x01"),  # Payload Format Indicator
        prop(0x03, string("text/plain")),  # Content Type
        prop(0x08, string("replies/seed5")),  # Response Topic
        prop(0x09, binary(b"corr")),  # Correlation Data
    )
    + string("clients/seed5/will")
    + binary(b"bye")
    + string("u")
    + binary(b"p"),
)

PAYLOAD = b"x" * 16

PUBLISH_V311_QOS0 = packet(0x30, string("sensors/a/temp") + PAYLOAD)
PUBLISH_V311_QOS1 = packet(0x33, string("sensors/a/temp") + u16(1) + PAYLOAD)
PUBLISH_V311_QOS2 = packet(0x34, string("sensors/a/temp") + u16(0x1234) + PAYLOAD)

PUBLISH_V5_QOS2 = packet(
    0x3C,  # DUP, QoS 2
    string("sensors/b/humidity")
    + u16(7)
    + properties(
        prop(0x01, b"\x01"),  # Payload Format Indicator
        prop(0x02, u32(60)),  # Message Expiry Interval
        prop(0x23, u16(3)),  # Topic Alias
        prop(0x08, string("replies/b")),  # Response Topic
        prop(0x09, binary(b"req-7")),  # Correlation Data
        user_property("k", "v"),
        prop(0x03, string("application/json")),  # Content Type
    )
    + b'{"h":41}',
)

# v5 QoS 1 with an empty topic name standing on a Topic Alias.
PUBLISH_V5_ALIAS = packet(
    0x32, string("") + u16(8) + properties(prop(0x23, u16(3))) + PAYLOAD
)

SUBSCRIBE_V311 = packet(
    0x82, u16(10) + string("sensors/+/temp") + b"\x01" + string("sport/#") + b"\x02"
)

SUBSCRIBE_V5 = packet(
    0x82,
    u16(11)
    + properties(prop(0x0B, varint(300)), user_property("app", "seed"))
    + string("$share/group/sensors/#")
    + bytes([0x20 | 0x08 | 0x02])  # Retain Handling 2, RAP, QoS 2
    + string("alerts/+")
    + bytes([0x04 | 0x01]),  # No Local, QoS 1
)

UNSUBSCRIBE_V311 = packet(0xA2, u16(12) + string("sport/#"))
PINGREQ = packet(0xC0, b"")
DISCONNECT_V5 = packet(
    0xE0, b"\x04" + properties(prop(0x11, u32(0)), prop(0x1F, string("bye")))
)

DECODE = {
    "connect-v311-will": CONNECT_V311_WILL,
    "connect-v5-properties": CONNECT_V5_PROPS,
    "publish-v311-qos0": PUBLISH_V311_QOS0,
    "publish-v311-qos1-retain": PUBLISH_V311_QOS1,
    "publish-v311-qos2": PUBLISH_V311_QOS2,
    "publish-v5-qos2-properties": PUBLISH_V5_QOS2,
    "publish-v5-qos1-alias": PUBLISH_V5_ALIAS,
    "subscribe-v311": SUBSCRIBE_V311,
    "subscribe-v5-shared": SUBSCRIBE_V5,
    # Whole conversations: a server decoder switches to 5.0 at the CONNECT.
    "session-v311": CONNECT_V311_WILL
    + SUBSCRIBE_V311
    + PUBLISH_V311_QOS1
    + UNSUBSCRIBE_V311
    + PINGREQ
    + packet(0xE0, b""),
    "session-v5": CONNECT_V5_PROPS
    + SUBSCRIBE_V5
    + PUBLISH_V5_QOS2
    + PUBLISH_V5_ALIAS
    + PINGREQ
    + DISCONNECT_V5,
}

# decode_chunked: a count byte, that many chunk sizes, then the stream.
DECODE_CHUNKED = {
    "session-v311-chunks-1": bytes([0, 1]) + DECODE["session-v311"],
    "session-v5-chunks-3-0-17": bytes([2, 3, 0, 17]) + DECODE["session-v5"],
    "publish-v5-chunks-2-40": bytes([1, 2, 40]) + PUBLISH_V5_QOS2 + PUBLISH_V5_ALIAS,
}

# topic: the filter, 0xFF, the name.
TOPIC = {
    "plus-hash": b"sport/+/player/#\xffsport/tennis/player/1",
    "shared": b"$share/g/sensors/+\xffsensors/kitchen",
    "sys": b"#\xff$SYS/broker/uptime",
    "empty-levels": b"+/+\xff/finance",
}


def write(target, seeds):
    directory = HERE / target
    directory.mkdir(exist_ok=True)
    for name, data in seeds.items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    write("decode", DECODE)
    write("decode_chunked", DECODE_CHUNKED)
    write("topic", TOPIC)
