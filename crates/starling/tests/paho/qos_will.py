"""The seed's Paho activity: a publisher sets its last will with will_set()
before connect(), then publishes QoS 0, 1 and 2 messages, each awaited with
wait_for_publish(); a subscriber receives each at the QoS it was sent with.

Usage: qos_will.py HOST PORT v311|v5
"""

from interop import Peer, args, check, say

WILL_MESSAGE = "Publisher disconnected"


def main():
    host, port, version, _ = args()
    topic = f"ufscar/mqtt_activity/{version}"
    will_topic = f"ufscar/mqtt_activity/{version}/will"

    sub = Peer(version, f"paho-sub-{version}")
    sub.connect(host, port)
    granted = sub.subscribe((topic, 2), (will_topic, 1))
    check(granted == [2, 1], f"granted QoS {granted}, expected [2, 1]")

    pub = Peer(version, f"paho-pub-{version}")
    # The will is part of CONNECT, so it is set before connect().
    pub.client.will_set(will_topic, WILL_MESSAGE, qos=1, retain=False)
    pub.connect(host, port)

    sent = [(0, "First Message"), (1, "Second Message"), (2, "Third Message")]
    for qos, text in sent:
        mid = pub.publish(topic, text, qos)
        say(f"Sent message - id: {mid}, QoS: {qos}")
        message = sub.message(f"the QoS {qos} message")
        # Delivered at min(published QoS, granted QoS 2) = its own QoS
        # (3.1.1 [MQTT-3.8.4-6], 5.0 [MQTT-3.8.4-8]), not retained.
        check(message.topic == topic, f"topic {message.topic!r}")
        check(message.payload == text.encode(), f"payload {message.payload!r}, expected {text!r}")
        check(message.qos == qos, f"{text!r} arrived at QoS {message.qos}, expected {qos}")
        check(not message.retain, f"{text!r} arrived with RETAIN 1")

    # A normal DISCONNECT deletes the will (3.1.1 [MQTT-3.1.2-10], 5.0
    # [MQTT-3.1.2-8] with reason code 0). Best effort: a will sent anyway
    # would very likely arrive before a message published after the
    # publisher's connection has closed.
    pub.disconnect()
    sub.publish(topic, "after the disconnect", 1)
    message = sub.message("the message published after the disconnect")
    check(
        message.payload == b"after the disconnect",
        f"received {message.topic!r} {message.payload!r} after a clean DISCONNECT",
    )
    sub.disconnect()
    say(f"PASS qos_will {version}: QoS 0, 1, 2 published and received at QoS 0, 1, 2")


if __name__ == "__main__":
    main()
