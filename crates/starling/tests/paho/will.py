"""A will published when its client's connection dies without DISCONNECT.

Two roles, run as two processes by the Rust test:

  will.py HOST PORT VERSION watcher   subscribes to the will topic, prints
                                      "SUBSCRIBED", waits for the will, checks
                                      it and prints the result line;
  will.py HOST PORT VERSION victim    sets a will before connect, connects,
                                      prints "CONNECTED" and blocks until the
                                      test kills it with SIGKILL.
"""

import threading

from interop import Peer, Properties, PacketTypes, args, check, fail, say

WILL_TOPIC = "ufscar/mqtt_activity/will"
WILL_MESSAGE = "Publisher disconnected"
USER_PROPERTIES = [("b", "2"), ("a", "1"), ("b", "3")]


def will_topic(version):
    return f"{WILL_TOPIC}/{version}"


def victim(host, port, version):
    peer = Peer(version, f"paho-victim-{version}")
    properties = None
    if version == "v5":
        properties = Properties(PacketTypes.WILLMESSAGE)
        properties.UserProperty = USER_PROPERTIES
        properties.ContentType = "text/plain"
    peer.client.will_set(will_topic(version), WILL_MESSAGE, qos=1, retain=False, properties=properties)
    peer.connect(host, port)
    say("CONNECTED")
    threading.Event().wait()


def watcher(host, port, version):
    peer = Peer(version, f"paho-watcher-{version}")
    peer.connect(host, port)
    granted = peer.subscribe((will_topic(version), 1))
    check(granted == [1], f"granted QoS {granted}, expected [1]")
    say("SUBSCRIBED")
    message = peer.message("the will")
    # Published because the connection closed without DISCONNECT (3.1.1
    # [MQTT-3.1.2-8], 5.0 [MQTT-3.1.2-8]), at the will's QoS 1, not retained.
    check(message.topic == will_topic(version), f"topic {message.topic!r}")
    check(message.payload == WILL_MESSAGE.encode(), f"payload {message.payload!r}")
    check(message.qos == 1, f"the will arrived at QoS {message.qos}, expected 1")
    check(not message.retain, "the will arrived with RETAIN 1")
    if version == "v5":
        props = message.properties
        # The will's user properties in their order (5.0 [MQTT-3.1.3-10])
        # and its content type (section 3.1.3.2.5), forwarded unaltered.
        got = getattr(props, "UserProperty", None)
        check(got == USER_PROPERTIES, f"user properties {got}, expected {USER_PROPERTIES}")
        got = getattr(props, "ContentType", None)
        check(got == "text/plain", f"content type {got!r}")
    peer.disconnect()
    say(f"PASS will {version}: will received at QoS 1 after the publisher's socket died")


def main():
    host, port, version, rest = args()
    roles = {"victim": victim, "watcher": watcher}
    if len(rest) != 1 or rest[0] not in roles:
        fail("the fourth argument must be victim or watcher")
    roles[rest[0]](host, port, version)


if __name__ == "__main__":
    main()
