"""Paho (paho-mqtt 2.x) for tests/tls_guide.rs: connects over TLS with
mosquitto_pub's flags, subscribes, publishes, and checks the first message
that comes back.

  tls_guide.py -h HOST -p PORT --cafile CA [--cert CERT --key KEY [--keypass P]]
               [--insecure] [-s FILTER]... [-m TOPIC=PAYLOAD]...
               (--expect TOPIC=PAYLOAD | --expect-refusal)

Subscribes to each FILTER (QoS 1), publishes each message in order (QoS 1,
each acknowledged before the next), then waits for the first message: it
must be --expect. With --expect-refusal the connection must fail instead (a
TLS handshake or a key that does not load, or the broker closing the
connection before CONNACK). Prints "PASS ..." and exits 0, or "FAIL ..." and
exits 1.
"""

import argparse
import ssl
import sys
import threading

import paho.mqtt.client as mqtt

WAIT = 5.0


def done(ok, message):
    print(f"{'PASS' if ok else 'FAIL'} {message}", flush=True)
    sys.exit(0 if ok else 1)


def parse():
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-h", dest="host", required=True)
    p.add_argument("-p", dest="port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--keypass")
    p.add_argument("--insecure", action="store_true")
    p.add_argument("-s", dest="filters", action="append", default=[])
    p.add_argument("-m", dest="messages", action="append", default=[])
    p.add_argument("--expect")
    p.add_argument("--expect-refusal", action="store_true")
    return p.parse_args()


def connect(args):
    """A connected client, or the reason it is not."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    try:
        c.tls_set(
            ca_certs=args.cafile,
            certfile=args.cert,
            keyfile=args.key,
            keyfile_password=args.keypass,
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError) as e:
        return None, f"tls_set: {e}"
    if args.insecure:
        c.tls_insecure_set(True)
    connected = threading.Event()
    outcome = {}

    def on_connect(_c, _u, _flags, reason_code, _p):
        outcome.setdefault("rc", reason_code)
        connected.set()

    def on_disconnect(_c, _u, _flags, reason_code, _p):
        # A TLS 1.3 client learns that its certificate was refused only here.
        outcome.setdefault("rc", f"disconnected ({reason_code})")
        connected.set()

    c.on_connect = on_connect
    c.on_disconnect = on_disconnect
    try:
        c.connect(args.host, args.port, keepalive=30)
    except (OSError, ssl.SSLError, ValueError) as e:
        return None, f"connect: {e}"
    c.loop_start()
    if not connected.wait(WAIT):
        c.loop_stop()
        return None, "no CONNACK"
    rc = outcome["rc"]
    if isinstance(rc, str) or rc.is_failure:
        c.loop_stop()
        return None, str(rc)
    return c, None


def main():
    args = parse()
    c, refused = connect(args)
    if args.expect_refusal:
        done(c is None, f"refused: {refused}" if c is None else "connected, not refused")
    if c is None:
        done(False, f"not connected: {refused}")
    first = []
    received = threading.Event()

    def on_message(_c, _u, message):
        if not first:
            first.append(f"{message.topic}={message.payload.decode()}")
            received.set()

    subscribed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *_: subscribed.set()
    if args.filters:
        c.subscribe([(f, 1) for f in args.filters])
        if not subscribed.wait(WAIT):
            done(False, "no SUBACK")
    for message in args.messages:
        topic, payload = message.split("=", 1)
        c.publish(topic, payload, qos=1).wait_for_publish(WAIT)
    if not received.wait(WAIT):
        done(False, f"no message, expected {args.expect}")
    c.disconnect()
    c.loop_stop()
    done(first[0] == args.expect, f"first message {first[0]}, expected {args.expect}")


main()
