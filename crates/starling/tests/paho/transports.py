"""Paho (paho-mqtt 2.x) over TLS and WebSockets: one client subscribes, another
publishes, the message must come back.

  transports.py HOST PORT VERSION TRANSPORT [--path PATH] [--ca CA]
                [--cert CERT --key KEY] [--expect-refusal]

TRANSPORT is "tcp" or "websockets" (Paho's transport="websockets", which
offers the "mqtt" subprotocol); --ca turns TLS on. Prints "PASS ..." and exits
0, or "FAIL ..." and exits 1. With --expect-refusal, passing means the
connection was refused (a TLS handshake the broker rejects).
"""

import argparse
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

WAIT = 5.0


def fail(message):
    print(f"FAIL {message}", flush=True)
    sys.exit(1)


def client(args, name):
    version = mqtt.MQTTv5 if args.version == "v5" else mqtt.MQTTv311
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"paho-{name}-{args.transport}",
        protocol=version,
        transport=args.transport,
    )
    if args.transport == "websockets":
        c.ws_set_options(path=args.path)
    if args.ca:
        c.tls_set(
            ca_certs=args.ca,
            certfile=args.cert,
            keyfile=args.key,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    return c


def connect(c, args):
    connected = threading.Event()
    outcome = {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties):
        outcome.setdefault("rc", reason_code)
        connected.set()

    def on_disconnect(_client, _userdata, _flags, reason_code, _properties):
        # A TLS 1.3 client learns that its certificate was refused only here.
        outcome.setdefault("rc", f"disconnected ({reason_code})")
        connected.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    try:
        c.connect(args.host, args.port, keepalive=30)
    except (OSError, ssl.SSLError) as e:
        return f"refused: {e}"
    c.loop_start()
    if not connected.wait(WAIT):
        c.loop_stop()
        return "no CONNACK"
    rc = outcome["rc"]
    if isinstance(rc, str) or rc.is_failure:
        c.disconnect()
        c.loop_stop()
        return f"CONNACK {rc}" if not isinstance(rc, str) else rc
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("version", choices=["v311", "v5"])
    parser.add_argument("transport", choices=["tcp", "websockets"])
    parser.add_argument("--path", default="/mqtt")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--expect-refusal", action="store_true")
    args = parser.parse_args()

    subscriber = client(args, "sub")
    error = connect(subscriber, args)
    if args.expect_refusal:
        if error is None:
            fail("the broker let the client in")
        print(f"PASS refused ({error})", flush=True)
        return
    if error is not None:
        fail(f"subscriber: {error}")

    got = threading.Event()
    received = []
    subscribed = threading.Event()

    def on_message(_client, _userdata, message):
        received.append(message)
        got.set()

    def on_subscribe(_client, _userdata, _mid, _reason_codes, _properties):
        subscribed.set()

    subscriber.on_message = on_message
    subscriber.on_subscribe = on_subscribe
    topic = f"paho/{args.transport}/{args.version}"
    subscriber.subscribe(topic, qos=1)
    if not subscribed.wait(WAIT):
        fail("no SUBACK")

    publisher = client(args, "pub")
    error = connect(publisher, args)
    if error is not None:
        fail(f"publisher: {error}")
    payload = b"x" * 70000  # several WebSocket frames and TLS records
    info = publisher.publish(topic, payload, qos=1)
    info.wait_for_publish(WAIT)
    if not got.wait(WAIT):
        fail("the message did not come back")
    message = received[0]
    if message.payload != payload or message.qos != 1:
        fail(f"got {len(message.payload)} bytes at QoS {message.qos}")
    publisher.disconnect()
    subscriber.disconnect()
    publisher.loop_stop()
    subscriber.loop_stop()
    print(f"PASS {args.transport} {args.version}", flush=True)


if __name__ == "__main__":
    main()
