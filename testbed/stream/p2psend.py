"""The source's side of mode ``p2p``: the tracker (in a thread of the source) and the push of each chunk.

:class:`P2PSender` has the :class:`testbed.stream.sender.Sender` interface the source's loop
uses (``datagrams`` per chunk, ``counters``): per chunk one CHUNK message (24 + P bytes of UDP payload,
52 + P on the wire) to each of ``fanout`` members of the swarm
chosen by :class:`testbed.p2p.tracker.SourcePush`; the ``destinations`` the source's control
socket manages are ignored (the swarm is who joined the tracker). The tracker listens on
the source's EID at ``tracker_port`` and answers JOIN/LEAVE from a daemon thread; a lock
guards the member list both threads use. See docs/p2p.md.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from typing import Any, Sequence

from testbed.p2p.tracker import SourcePush, TrackerCore
from testbed.stream.sender import Datagram, SenderCounters
from testbed.wire.p2p import TRACKER_PORT


class P2PSender:
    """Tracker plus push; ``settings`` is the source config's ``p2p`` block (testbed.schemas.peer.SourceP2P)."""

    mode = "p2p"

    def __init__(self, *, src_eid: str, stream_id: int = 1, settings: dict[str, Any] | None = None) -> None:
        s = settings or {}
        params = s.get("params") or {}
        self.src_eid = src_eid
        self.port = int(s.get("tracker_port", TRACKER_PORT))
        self.tracker = TrackerCore(asn=int(s.get("asn", 0)), stream_id=stream_id,
                                   view_size=int(params.get("view_size", 20)), seed=int(s.get("seed", 1)))
        self.push = SourcePush(self.tracker, fanout=int(params.get("fanout", 4)),
                               policy=str(params.get("policy", "random")), seed=int(s.get("seed", 1)))
        self.counters = SenderCounters()
        self.by_as: dict[int, list[int]] = {}
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> int:
        """Bind the tracker's socket and start its thread; return the port. OSError if it cannot bind."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.src_eid, self.port))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock = sock
        self._thread = threading.Thread(target=self._serve, name="tracker", daemon=True)
        self._thread.start()
        return sock.getsockname()[1]

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while not self._stop.is_set():
            if not sel.select(0.2):
                continue
            for _ in range(256):
                try:
                    data, src = self.sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                with self.lock:
                    replies = self.tracker.receive(data, src)
                    for payload, dst in replies:
                        self.counters.add("tracker", len(payload))
                        self._to_as(dst, len(payload))
                for payload, dst in replies:
                    try:
                        self.sock.sendto(payload, dst)
                    except OSError:
                        pass
        sel.close()

    def datagrams(self, seq: int, chunk: bytes, destinations: Sequence[tuple[str, int]] = (),
                  digest: bytes | None = None) -> list[Datagram]:
        """The CHUNK pushes of chunk ``seq`` (``destinations`` and ``digest`` are not used)."""
        with self.lock:
            out = self.push.datagrams(seq, chunk, int(time.time() * 1e6))
            self.counters.chunks += 1
            for payload, dst in out:
                self.counters.add("chunk", len(payload))
                self._to_as(dst, len(payload))
        return [(payload, eid, port) for payload, (eid, port) in out]

    def _to_as(self, dst: tuple[str, int], nbytes: int) -> None:
        """Count a datagram to ``dst`` by the member's AS (call with the lock held)."""
        row = self.by_as.setdefault(self.tracker.asn_of.get(dst, -1), [0, 0])
        row[0] += nbytes
        row[1] += 1

    def status(self) -> dict[str, Any]:
        """Tracker counters for the source's status file; ``to_as``: AS -> [bytes, datagrams] sent there."""
        with self.lock:
            t = self.tracker
            return {"members": len(t.members), "joins": t.joins, "leaves": t.leaves, "drops": dict(t.drops),
                    "to_as": {str(k): list(v) for k, v in self.by_as.items()}}

    def close(self) -> None:
        """Stop the tracker thread (within 0.2 s plus a 2 s deadline) and close its socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if self.sock is not None:
            self.sock.close()
