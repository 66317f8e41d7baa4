"""A persistent session resumed with the QoS 1 messages queued while away.

A subscriber with a persistent session (3.1.1: clean_session=False; 5.0:
Session Expiry Interval 300 s, then Clean Start 0) subscribes at QoS 1 and
disconnects; a publisher sends three QoS 1 messages; the subscriber comes
back with the same client id, does not subscribe again, and receives them.

Usage: session.py HOST PORT v311|v5
"""

from interop import Peer, args, check, say

EXPIRY = 300


def main():
    host, port, version, _ = args()
    client_id = f"paho-persistent-{version}"
    topic = f"persist/{version}"

    first = Peer(version, client_id, persistent=True)
    flags = first.connect(host, port, clean_start=True, session_expiry=EXPIRY)
    # No session existed yet: Session Present 0 (3.1.1 [MQTT-3.2.2-3];
    # 5.0 [MQTT-3.2.2-2] with Clean Start 1).
    check(not flags.session_present, "Session Present 1 on the first connection")
    granted = first.subscribe((topic, 1))
    check(granted == [1], f"granted QoS {granted}, expected [1]")
    first.disconnect()

    pub = Peer(version, f"paho-session-pub-{version}")
    pub.connect(host, port)
    texts = [f"queued {n}" for n in (1, 2, 3)]
    for text in texts:
        pub.publish(topic, text, 1)
    pub.disconnect()

    again = Peer(version, client_id, persistent=True)
    flags = again.connect(host, port, clean_start=False, session_expiry=EXPIRY)
    # The session is resumed (3.1.1 [MQTT-3.1.2-4], [MQTT-3.2.2-2]; 5.0
    # [MQTT-3.1.2-5], [MQTT-3.2.2-3]) with the QoS 1 messages that matched
    # its subscription while it was away (3.1.1 [MQTT-3.1.2-5]; 5.0
    # [MQTT-3.1.2-23]), in order (3.1.1 [MQTT-4.6.0-6]).
    check(flags.session_present, "Session Present 0 on resuming the session")
    for text in texts:
        message = again.message(f"the queued message {text!r}")
        check(message.topic == topic, f"topic {message.topic!r}")
        check(message.payload == text.encode(), f"payload {message.payload!r}, expected {text!r}")
        check(message.qos == 1, f"{text!r} arrived at QoS {message.qos}, expected 1")
    again.disconnect()
    say(f"PASS session {version}: session resumed with {len(texts)} queued QoS 1 messages")


if __name__ == "__main__":
    main()
