"""The source's destination list and its join/leave control protocol (sans-I/O).

Control protocol: UTF-8 text, one command per line (several lines may share a
UDP datagram; a Unix stream connection may send many). Each command gets one
reply line:

```
join EID PORT    -> ok join EID PORT seq=N      (N: first chunk the client gets)
leave EID PORT   -> ok leave EID PORT seq=N     (N: first chunk it no longer gets)
list             -> ok list COUNT EID:PORT EID:PORT ...
status           -> ok status seq=N destinations=COUNT joins=J leaves=L
anything wrong   -> err REASON [detail]         (bad-eid, bad-port, usage, already-joined,
                                                 not-joined, unknown-command)
```
Blank lines and lines starting with ``#`` get no reply. Every join and leave is
kept as an :class:`Event` (time, kind, EID, port, seq) so the records can
tell which chunks each client should have received and how long a channel
change took.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

Destination = tuple[str, int]
"""(client EID as dotted quad, UDP port)."""


class DestinationError(ValueError):
    """A destination is malformed; ``reason`` is the protocol's error tag."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason} {detail}".strip())


@dataclass(frozen=True, slots=True)
class Event:
    """A change of the destination list: ``kind`` is "join" or "leave".

    ``seq`` is the sequence number of the first chunk the change applies to.
    """

    time: float
    kind: str
    eid: str
    port: int
    seq: int


def parse_destination(eid: str, port: str | int) -> Destination:
    """Return a checked (EID, port); raise :class:`DestinationError`."""
    try:
        addr = ipaddress.IPv4Address(str(eid))
    except ValueError:
        raise DestinationError("bad-eid", str(eid)) from None
    try:
        num = int(port)
    except (TypeError, ValueError):
        raise DestinationError("bad-port", str(port)) from None
    if isinstance(port, bool) or not 1 <= num <= 65535:
        raise DestinationError("bad-port", str(port))
    return str(addr), num


class Destinations:
    """An ordered set of destinations (join order) with a history of changes."""

    def __init__(self) -> None:
        self._members: dict[Destination, None] = {}
        self._snapshot: tuple[Destination, ...] | None = ()
        self.version = 0
        """Incremented on every change (lets senders cache per-list work)."""
        self.events: list[Event] = []

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, dest: object) -> bool:
        return dest in self._members

    def items(self) -> tuple[Destination, ...]:
        """Return the current destinations in join order (cached until the next change)."""
        if self._snapshot is None:
            self._snapshot = tuple(self._members)
        return self._snapshot

    def join(self, eid: str, port: int | str, now: float, seq: int) -> Destination:
        """Add a destination from chunk ``seq`` on; raise DestinationError if bad or present."""
        dest = parse_destination(eid, port)
        if dest in self._members:
            raise DestinationError("already-joined", f"{dest[0]} {dest[1]}")
        self._members[dest] = None
        self._changed(Event(now, "join", dest[0], dest[1], seq))
        return dest

    def leave(self, eid: str, port: int | str, now: float, seq: int) -> Destination:
        """Remove a destination from chunk ``seq`` on; raise DestinationError if bad or absent."""
        dest = parse_destination(eid, port)
        if dest not in self._members:
            raise DestinationError("not-joined", f"{dest[0]} {dest[1]}")
        del self._members[dest]
        self._changed(Event(now, "leave", dest[0], dest[1], seq))
        return dest

    def _changed(self, event: Event) -> None:
        self._snapshot = None
        self.version += 1
        self.events.append(event)


class ControlProtocol:
    """Turn control lines into destination changes and reply lines.

    ``next_seq`` is read at each command: the sequence number of the next chunk
    the source will send (a callable, so the protocol needs no reference to the
    source loop).
    """

    def __init__(self, destinations: Destinations, next_seq) -> None:
        self.destinations = destinations
        self._next_seq = next_seq
        self.counters: dict[str, int] = {"commands": 0, "errors": 0, "joins": 0, "leaves": 0}

    def handle_text(self, text: str, now: float) -> list[str]:
        """Handle every line of ``text``; return the reply lines (no newlines)."""
        replies = []
        for line in text.splitlines():
            reply = self.handle_line(line, now)
            if reply is not None:
                replies.append(reply)
        return replies

    def handle_line(self, line: str, now: float) -> str | None:
        """Handle one command line; return its reply, or None for blank/comment lines."""
        words = line.split()
        if not words or words[0].startswith("#"):
            return None
        self.counters["commands"] += 1
        try:
            return self._dispatch(words, now)
        except DestinationError as exc:
            self.counters["errors"] += 1
            return f"err {exc}"

    def _dispatch(self, words: list[str], now: float) -> str:
        cmd = words[0].lower()
        seq = self._next_seq()
        if cmd in ("join", "leave"):
            if len(words) != 3:
                raise DestinationError("usage", f"{cmd} EID PORT")
            if cmd == "join":
                eid, port = self.destinations.join(words[1], words[2], now, seq)
                self.counters["joins"] += 1
            else:
                eid, port = self.destinations.leave(words[1], words[2], now, seq)
                self.counters["leaves"] += 1
            return f"ok {cmd} {eid} {port} seq={seq}"
        if cmd == "list":
            items = self.destinations.items()
            return " ".join(["ok list", str(len(items))] + [f"{e}:{p}" for e, p in items])
        if cmd == "status":
            return (f"ok status seq={seq} destinations={len(self.destinations)} "
                    f"joins={self.counters['joins']} leaves={self.counters['leaves']}")
        raise DestinationError("unknown-command", words[0][:40])
