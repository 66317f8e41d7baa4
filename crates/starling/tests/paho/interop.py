"""Helpers shared by the Paho interoperability scripts.

Every script takes HOST PORT VERSION (v311 or v5), prints one result line,
"PASS ..." or "FAIL ...", and exits 0 only when it passes. Waits have
deadlines; nothing sleeps for a fixed time.
"""

import os
import queue
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

# How long any single wait may take.
WAIT = 10.0

VERSIONS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


def fail(message):
    """Prints the failure line and exits non-zero (from any thread)."""
    print(f"FAIL {os.path.basename(sys.argv[0])}: {message}", flush=True)
    os._exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def watchdog(seconds=3 * WAIT):
    """Fails the script if it runs longer than `seconds`."""
    timer = threading.Timer(seconds, fail, [f"did not finish within {seconds} s"])
    timer.daemon = True
    timer.start()


def args():
    """HOST PORT VERSION [EXTRA...] from the command line."""
    if len(sys.argv) < 4 or sys.argv[3] not in VERSIONS:
        fail(f"usage: {sys.argv[0]} HOST PORT v311|v5 ...")
    watchdog()
    return sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]


class Peer:
    """A Paho client (callback API version 2) whose events go to queues, so
    that the script can wait for each with a deadline."""

    def __init__(self, version, client_id, persistent=False):
        self.version = version
        self.persistent = persistent
        protocol = VERSIONS[version]
        # In 3.1.1 the session kind is CleanSession, a constructor argument;
        # in 5.0 it is Clean Start and Session Expiry, given at connect.
        clean_session = (not persistent) if version == "v311" else None
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        self.connacks = queue.Queue()
        self.subacks = queue.Queue()
        self.messages = queue.Queue()
        self.disconnects = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connacks.put((flags, reason_code, properties))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subacks.put((mid, reason_codes))

    def _on_message(self, client, userdata, message):
        self.messages.put(message)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnects.put(reason_code)

    def connect(self, host, port, clean_start=True, session_expiry=None):
        """Connects, starts the network loop and returns the CONNACK's
        flags once it is a success."""
        kwargs = {}
        if self.version == "v5":
            kwargs["clean_start"] = clean_start
            if session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = session_expiry
                kwargs["properties"] = props
        rc = self.client.connect(host, port, 60, **kwargs)
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"connect returned {rc}")
        self.client.loop_start()
        flags, reason_code, _ = get(self.connacks, "CONNACK")
        check(not reason_code.is_failure, f"CONNACK refused: {reason_code}")
        return flags

    def subscribe(self, *pairs):
        """Subscribes to (filter, qos) pairs and returns the granted QoS."""
        rc, mid = self.client.subscribe(list(pairs))
        check(rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe returned {rc}")
        got_mid, reason_codes = get(self.subacks, "SUBACK")
        check(got_mid == mid, f"SUBACK for mid {got_mid}, expected {mid}")
        return [rc.value for rc in reason_codes]

    def publish(self, topic, payload, qos, **kwargs):
        """Publishes and waits until the exchange for its QoS is complete
        (PUBACK for 1, PUBCOMP for 2): wait_for_publish."""
        info = self.client.publish(topic, payload, qos=qos, **kwargs)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish returned {info.rc}")
        info.wait_for_publish(timeout=WAIT)
        check(info.is_published(), f"QoS {qos} publish {payload!r} not completed in {WAIT} s")
        return info.mid

    def message(self, what):
        return get(self.messages, what)

    def disconnect(self):
        """Sends DISCONNECT and waits for the connection to close."""
        self.client.disconnect()
        get(self.disconnects, "the end of the connection")
        self.client.loop_stop()


def get(q, what):
    try:
        return q.get(timeout=WAIT)
    except queue.Empty:
        fail(f"no {what} within {WAIT} s")
        raise  # unreachable: fail exits


def say(line):
    print(line, flush=True)
