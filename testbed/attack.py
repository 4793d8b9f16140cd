"""Attack traffic for ``corecast run attack`` (docs/security.md), sans-I/O: datagrams in, counts out.

:func:`build` turns one attack spec (a JSON-friendly dict, see below) into the
list of :class:`Datagram` the attacker host sends; ``nodes/attacker.py`` sends
them. :func:`count_delivered` reads captures taken on client LANs and counts,
per attack, the datagrams and bytes that reached clients.

Every attack chunk starts with :data:`MARKER` and the attack's number (one
byte), so what reaches a client is told apart from the legitimate stream
(whose MPEG-TS chunks start with the sync byte 0x47) and from other attacks.

Specs (all addresses dotted-quad strings):

* ``{"kind": "etr", "id", "target", "spoof": RLOC or None, "stream_id", "chunk_bytes",
  "src_eids": [...], "dst_eids": [...], "sport", "dport", "refs", "rounds"}``:
  ``rounds`` x (one CoreCast DATA, then ``refs`` REFs naming ``dst_eids`` and
  ``src_eids`` in turn), each behind a LISP header with the N and C bits, to
  ``target``:4341. With ``spoof`` the outer source is that address (raw IPv4,
  at most 1500 bytes); without, the host's own address (UDP socket: the kernel
  fragments a large chunk).
* ``{"kind": "service", "id", "via": "raw" | "lisp", "service", "port", "claimed_src",
  "target", "stream_id", "chunk_bytes", "dst_eids", "sport", "dport", "refs"}``: a DATA
  and ``refs`` REFs as UDP from ``claimed_src`` (spoofed) to the ITR's service
  address: ``raw`` sends the IPv4 packets as they are (they cross the attacker's
  own xTR, which LISP-encapsulates them); ``lisp`` wraps each in a LISP header
  (N bit) and sends it to ``target``:4341, the ITR's RLOC, from the host's address.

Sizes count IPv4 datagrams as sent (IP total length before any fragmentation).
:func:`fresh_statuses` and :func:`drop_deltas` tell which xTR counters caught an
attack (status files, ``state/<name>.status.json``, rewritten every second).
"""

from __future__ import annotations

import json
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable

from testbed.wire.constants import (CORECAST_PORT, IPV4_HEADER, LISP_DATA_PORT, LISP_FLAG_C, LISP_FLAG_N,
                                    UDP_HEADER)
from testbed.wire.corecast import chunk_hash, encode_data, encode_ref
from testbed.wire.ipv4 import build_ipv4_udp

MARKER = b"\xa7CCATK"
"""First bytes of every attack chunk; the attack's number (one byte) follows."""
MAX_DATAGRAMS = 20_000
"""Most datagrams one attack may send (a bounded tool)."""
MAX_BYTES = 64 << 20
"""Most bytes one attack may send."""
MAX_CHUNK = 0xFFFF - IPV4_HEADER - UDP_HEADER - 8 - 12
"""Largest chunk a DATA can carry in one IPv4 datagram (LISP and CoreCast headers included): 65,487."""


class AttackError(ValueError):
    """An attack spec is malformed or exceeds the bounds; one line for the user."""


@dataclass(frozen=True)
class Datagram:
    """One datagram to send.

    ``raw``: ``data`` is a complete IPv4 packet, sent with IP_HDRINCL towards ``dst``
    (``port`` unused). Otherwise ``data`` is a UDP payload sent from the host's own
    address to (``dst``, ``port``).
    """

    raw: bool
    dst: str
    port: int
    data: bytes

    @property
    def ip_bytes(self) -> int:
        """IP total length of the datagram as sent (before fragmentation)."""
        return len(self.data) if self.raw else IPV4_HEADER + UDP_HEADER + len(self.data)


def attack_chunk(attack_id: int, size: int) -> bytes:
    """A chunk of ``size`` bytes: MARKER, the attack number, then a filler pattern."""
    if not 0 <= attack_id <= 255:
        raise AttackError(f"attack id {attack_id} outside 0..255")
    head = MARKER + bytes([attack_id])
    if size < len(head):
        raise AttackError(f"chunk of {size} bytes cannot hold the {len(head)}-byte marker")
    filler = bytes(range(256)) * (size // 256 + 1)
    return head + filler[:size - len(head)]


def lisp_header(flags: int, nonce: int = 0x00A77A) -> bytes:
    """An 8-byte LISP data header (RFC 9300 section 5.1) with ``flags`` in the first byte."""
    return struct.pack("!II", (flags << 24) | (nonce & 0xFFFFFF), 0)


def _ip4(addr: str, what: str) -> bytes:
    try:
        return socket.inet_aton(addr)
    except (OSError, TypeError):
        raise AttackError(f"{what} '{addr}' is not an IPv4 address") from None


def _int(spec: dict, key: str, low: int, high: int) -> int:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AttackError(f"attack '{key}' must be a whole number within {low}..{high}, got {value!r}")
    return value


def _eids(spec: dict, key: str) -> list[bytes]:
    value = spec.get(key)
    if not isinstance(value, list) or not value:
        raise AttackError(f"attack '{key}' must be a non-empty list of addresses")
    return [_ip4(v, key) for v in value]


def _messages(spec: dict, src_eids: list[bytes], dst_eids: list[bytes]) -> list[bytes]:
    """The CoreCast messages of one round: a DATA, then the REFs."""
    chunk = attack_chunk(_int(spec, "id", 0, 255), _int(spec, "chunk_bytes", len(MARKER) + 1, MAX_CHUNK))
    stream = _int(spec, "stream_id", 0, 0xFFFFFFFF)
    refs = _int(spec, "refs", 0, MAX_DATAGRAMS)
    sport, dport = _int(spec, "sport", 0, 0xFFFF), _int(spec, "dport", 0, 0xFFFF)
    seq = spec.get("seq", 1)
    digest = chunk_hash(chunk)
    out = [encode_data(stream, seq, chunk)]
    for i in range(refs):
        out.append(encode_ref(stream, seq, digest, src_eids[i % len(src_eids)], dst_eids[i % len(dst_eids)],
                              sport, dport))
    return out


def _etr(spec: dict) -> list[Datagram]:
    target = spec.get("target")
    _ip4(target, "target")
    rounds = _int(spec, "rounds", 1, MAX_DATAGRAMS) if "rounds" in spec else 1
    spoof = spec.get("spoof")
    cc = lisp_header(LISP_FLAG_N | LISP_FLAG_C)
    out: list[Datagram] = []
    src_eids, dst_eids = _eids(spec, "src_eids"), _eids(spec, "dst_eids")
    for r in range(rounds):
        msgs = _messages({**spec, "seq": int(spec.get("seq", 1)) + r}, src_eids, dst_eids)
        for msg in msgs:
            if spoof is None:
                out.append(Datagram(False, target, LISP_DATA_PORT, cc + msg))
            else:
                pkt = build_ipv4_udp(_ip4(spoof, "spoof"), _ip4(target, "target"), 0xC000 | (r & 0x3FFF),
                                     LISP_DATA_PORT, cc + msg, udp_checksum_on=False)
                if len(pkt) > 1500:
                    raise AttackError(f"a spoofed datagram of {len(pkt)} bytes exceeds the 1500-byte MTU")
                out.append(Datagram(True, target, 0, pkt))
    return out


def _service(spec: dict) -> list[Datagram]:
    via = spec.get("via")
    if via not in ("raw", "lisp"):
        raise AttackError(f"service attack 'via' must be raw or lisp, got {via!r}")
    service, claimed = _ip4(spec.get("service"), "service"), _ip4(spec.get("claimed_src"), "claimed_src")
    port = _int(spec, "port", 1, 0xFFFF) if "port" in spec else CORECAST_PORT
    out: list[Datagram] = []
    for msg in _messages(spec, [claimed], _eids(spec, "dst_eids")):
        inner = build_ipv4_udp(claimed, service, _int(spec, "sport", 0, 0xFFFF), port, msg)
        if via == "raw":
            out.append(Datagram(True, spec["service"], 0, inner))
        else:
            target = spec.get("target")
            _ip4(target, "target")
            out.append(Datagram(False, target, LISP_DATA_PORT, lisp_header(LISP_FLAG_N) + inner))
    return out


def build(spec: dict[str, Any]) -> list[Datagram]:
    """The datagrams of one attack (see the module docstring); AttackError if malformed or too big."""
    if not isinstance(spec, dict):
        raise AttackError("an attack spec must be an object")
    kind = spec.get("kind")
    if kind == "etr":
        out = _etr(spec)
    elif kind == "service":
        out = _service(spec)
    else:
        raise AttackError(f"unknown attack kind {kind!r} (etr or service)")
    if len(out) > MAX_DATAGRAMS:
        raise AttackError(f"attack of {len(out)} datagrams exceeds {MAX_DATAGRAMS}")
    if sum(d.ip_bytes for d in out) > MAX_BYTES:
        raise AttackError(f"attack exceeds {MAX_BYTES} bytes")
    return out


# ------------------------------------------------------------------ what reached the clients
def classify(ip: bytes | memoryview, groups: dict) -> tuple[int, int] | None:
    """(attack id, bytes) of one captured IPv4 packet (or fragment) that belongs to an attack, else None.

    A datagram belongs to attack N if its UDP payload starts with MARKER + N. Bytes
    are counted so that a datagram's fragments add up to its unfragmented IP total
    length: the first fragment counts its total length, later ones their payload.
    ``groups`` maps (src, dst, IP ID) to the attack of a fragmented datagram in
    progress (pass the same dict for one capture, packets in capture order).
    """
    if len(ip) < IPV4_HEADER or ip[0] >> 4 != 4 or ip[9] != 17:
        return None
    ihl = (ip[0] & 0x0F) * 4
    total, ident, frag = struct.unpack_from("!HHH", ip, 2)
    offset, more = frag & 0x1FFF, frag & 0x2000
    key = (bytes(ip[12:16]), bytes(ip[16:20]), ident)
    if offset:
        aid = groups.get(key)
        if not more:
            groups.pop(key, None)
        return None if aid is None else (aid, total - ihl)
    start = ihl + UDP_HEADER
    head = bytes(ip[start:start + len(MARKER) + 1])
    if len(head) < len(MARKER) + 1 or not head.startswith(MARKER):
        groups.pop(key, None)
        return None
    aid = head[-1]
    if more:
        groups[key] = aid
    return aid, total


def count_delivered(pcaps: Iterable[str]) -> dict[int, dict[str, int]]:
    """Per attack id: ``{"datagrams", "bytes", "fragments"}`` that the captures saw reaching clients.

    Each capture (pcap or pcapng, read by :mod:`testbed.capfile`) is one client LAN
    captured in the direction of the clients, with a snap length of at least the
    headers + 7 bytes. Datagrams count first fragments (or whole datagrams); bytes
    are unfragmented IP total lengths (see :func:`classify`). CaptureError if a file
    cannot be read.
    """
    from testbed.capfile import ip_offset, read_capture
    out: dict[int, dict[str, int]] = {}
    for path in pcaps:
        groups: dict = {}
        for frame in read_capture(path):
            off = ip_offset(frame.linktype, frame.data)
            if off < 0:
                continue
            ip = memoryview(frame.data)[off:]
            got = classify(ip, groups)
            if got is None:
                continue
            aid, nbytes = got
            row = out.setdefault(aid, {"datagrams": 0, "bytes": 0, "fragments": 0})
            row["bytes"] += nbytes
            row["fragments"] += 1
            if not (struct.unpack_from("!H", ip, 6)[0] & 0x1FFF):
                row["datagrams"] += 1
    return out


# ------------------------------------------------------------------ what the xTRs counted
NOT_DROPS = frozenset(("cc-promoted", "cc-ref-flushed", "cc-ref-queued", "cc-ref-in"))
"""``cc-`` counters that count work done, not packets stopped."""


def fresh_statuses(paths: dict[str, str], after: float, timeout: float = 30.0) -> dict[str, dict]:
    """The status file of every node in ``paths`` (name -> path), each written after wall time ``after``.

    Raises RuntimeError naming the late nodes after ``timeout`` seconds (nodes rewrite it every second;
    30 s leaves room for xTRs slowed by a loaded machine, where 6 s could fail a run).
    """
    deadline = time.monotonic() + timeout
    while True:
        got = {}
        for name, path in paths.items():
            try:
                with open(path) as fh:
                    got[name] = json.load(fh)
            except (OSError, ValueError):
                got[name] = {}
        if all(s.get("time", 0) > after for s in got.values()):
            return got
        if time.monotonic() > deadline:
            late = [n for n, s in got.items() if s.get("time", 0) <= after]
            raise RuntimeError(f"no fresh status from {', '.join(late)} within {timeout:.0f} s")
        time.sleep(0.05)


def is_drop(name: str) -> bool:
    """True for an xTR counter that counts dropped or held-back packets (quarantined DATA included).

    ``sav-drop``: a router's source address validation drops (:mod:`testbed.net.sav`).
    """
    from testbed.measure import DROP_COUNTERS
    return name in DROP_COUNTERS or (name.startswith(("cc-", "decode-")) and name not in NOT_DROPS) or \
        name in ("stream-evicted", "unresolved", "queue-overflow", "pending-overflow", "no-chunk", "sav-drop")


def drop_deltas(before: dict[str, dict], after: dict[str, dict]) -> dict[str, int]:
    """Drop counters that rose between two status snapshots: ``{"x1.corecast_etr.cc-unknown-itr": 100}``."""
    out = {}
    for node, status in sorted(after.items()):
        for section, counters in status.items():
            if not isinstance(counters, dict):
                continue
            prev = before.get(node, {}).get(section, {})
            for key, value in counters.items():
                if isinstance(value, int) and not isinstance(value, bool) and is_drop(key):
                    delta = value - int(prev.get(key, 0) or 0)
                    if delta > 0:
                        out[f"{node}.{section}.{key}"] = delta
    return out
