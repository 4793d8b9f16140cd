"""Ports for tests that start node processes on loopback (not a test module itself).

``free_port()`` used to bind port 0, close the socket and hand the port to a process that
binds it a second or more later: the kernel hands the same ephemeral range to every
process that binds port 0 or sends from an unbound socket, so on a busy machine another
process could take it in between (TOCTOU), and two calls could even return the same port.
Here a port comes from below the ephemeral range (``net.ipv4.ip_local_port_range``), where
the kernel never allocates on its own, is checked free for UDP and TCP on every address
(0.0.0.0), and is never handed out twice by one test process.
"""

from __future__ import annotations

import random
import socket

LOW = 26000
"""Lowest port handed out (tests/test_peer_node.py uses fixed ports near 24350 and 25350)."""

_given: set[int] = set()
_rng = random.Random()


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free now on every local address, outside the kernel's ephemeral range, new to this process."""
    high = _ephemeral_low()
    if high - LOW < 1000:  # an unusual range: fall back to the kernel's choice (the old way)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(1000):
        port = _rng.randrange(LOW, high)
        if port not in _given and _bindable(port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port in {LOW}..{high - 1}")
