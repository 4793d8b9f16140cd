"""LISP- and CoreCast-aware reading of captures: fast per-type totals and ``corecast decode``.

:func:`count_capture` walks a pcap/pcapng with scapy's ``RawPcapReader`` and the
fast codecs (no scapy dissection) and sums, per message type, packets and IP
total lengths; the experiments use it for ``core_bytes``. :func:`decode_command`
prints one line per packet and the totals; ``detail=True`` shows scapy's view.

Message types (the outer IPv4/UDP header decides):

* ``lisp-unicast``: UDP 4341 without the C bit (an encapsulated IP packet);
* ``corecast-data`` / ``corecast-ref``: UDP 4341 with the C bit, by CoreCast type;
* ``lisp-control``: UDP 4342 (either port);
* ``corecast-service``: UDP 4340 (CoreCast messages from the source to its ITR);
* ``other``: anything else that is IPv4 or not IP at all;
* ``malformed``: a truncated or inconsistent IP header, or a LISP/CoreCast
  message that the fast codec rejects.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from testbed.wire import corecast as cc
from testbed.wire.constants import CORECAST_PORT, LISP_DATA_PORT, LISP_CONTROL_PORT, LISP_FLAG_C
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import Ecm, EidRecord, MapNotify, MapRegister, MapReply, MapRequest, decode_control

KINDS = ("lisp-unicast", "corecast-data", "corecast-ref", "lisp-control", "corecast-service", "other", "malformed")
"""Every message type :func:`count_capture` reports, in display order."""

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL2 = 1, 101, 113, 228, 276
_RAW_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_IPV4, 12, 14)  # 12 and 14: DLT_RAW on some BSDs
_ETH_IPV4, _ETH_VLAN, _ETH_QINQ = 0x0800, 0x8100, 0x88A8
_H = struct.Struct("!H")
_IPFIX = struct.Struct("!BxH5xB")  # ver/ihl, total length, protocol
_PORTS = struct.Struct("!HH")


class CaptureError(Exception):
    """The file cannot be read as a capture (missing, not pcap/pcapng, unsupported link type)."""


@dataclass
class CaptureTotals:
    """Packets and summed IP total lengths per message type (see :data:`KINDS`)."""

    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    linktype: int | None = None

    @property
    def total_packets(self) -> int:
        """All packets in the capture."""
        return sum(self.packets.values())

    @property
    def lisp_data_packets(self) -> int:
        """Packets on UDP 4341 (LISP data, with or without the C bit)."""
        return sum(self.packets[k] for k in ("lisp-unicast", "corecast-data", "corecast-ref"))

    @property
    def lisp_data_bytes(self) -> int:
        """IP bytes on UDP 4341: DESIGN's ``core_bytes`` when counted on the core-facing interface."""
        return sum(self.bytes[k] for k in ("lisp-unicast", "corecast-data", "corecast-ref"))

    @property
    def control_bytes(self) -> int:
        """IP bytes on UDP 4342 (DESIGN's ``control_bytes``)."""
        return self.bytes["lisp-control"]

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{kind: {"packets": n, "bytes": b}}`` for JSON."""
        return {k: {"packets": self.packets[k], "bytes": self.bytes[k]} for k in KINDS}


def _ip_offset(linktype: int, frame: bytes) -> int:
    """Return the offset of an IPv4 header in ``frame``, or -1 if the frame is not IPv4."""
    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            return -1
        etype = (frame[12] << 8) | frame[13]
        off = 14
        while etype in (_ETH_VLAN, _ETH_QINQ) and len(frame) >= off + 4:
            etype = (frame[off + 2] << 8) | frame[off + 3]
            off += 4
        return off if etype == _ETH_IPV4 else -1
    if linktype == LINKTYPE_LINUX_SLL:
        return 16 if len(frame) >= 16 and frame[14] == 0x08 and frame[15] == 0x00 else -1
    if linktype == LINKTYPE_LINUX_SLL2:
        return 20 if len(frame) >= 20 and frame[0] == 0x08 and frame[1] == 0x00 else -1
    if linktype in _RAW_LINKTYPES:
        return 0 if frame[:1] and frame[0] >> 4 == 4 else -1
    raise CaptureError(f"unsupported link type {linktype}")


def classify(frame: bytes, off: int) -> tuple[str, int, int, int]:
    """Return (kind, IP total length, offset of the UDP payload, UDP destination port) of the IPv4 packet at ``off``.

    Only headers are checked here (the fast path); LISP control messages are
    validated by the callers. A truncated capture (snap length) is fine as long
    as the headers that decide the type are present.
    """
    n = len(frame)
    if n < off + 20:
        return "malformed", 0, 0, 0
    vihl, total, proto = _IPFIX.unpack_from(frame, off)
    ihl = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or ihl < 20 or total < ihl:
        return "malformed", total, 0, 0
    if proto != 17 or (frame[off + 6] & 0x1F) or frame[off + 7]:  # not UDP, or a non-first fragment
        return "other", total, 0, 0
    udp = off + ihl
    if n < udp + 8 or total < ihl + 8:
        return "malformed", total, 0, 0
    sport, dport = _PORTS.unpack_from(frame, udp)
    body = udp + 8
    if dport == LISP_DATA_PORT or sport == LISP_DATA_PORT:
        if n < body + 8 or total < ihl + 16:
            return "malformed", total, body, dport
        if not frame[body] & LISP_FLAG_C:
            return "lisp-unicast", total, body, dport
        if n < body + 9 or total < ihl + 16 + cc.CORECAST_HEADER:
            return "malformed", total, body, dport
        first = frame[body + 8]
        if first == 0x11:
            return "corecast-data", total, body, dport
        if first == 0x12 and total == ihl + 16 + cc.CORECAST_REF:
            return "corecast-ref", total, body, dport
        return "malformed", total, body, dport
    if dport == LISP_CONTROL_PORT or sport == LISP_CONTROL_PORT:
        return "lisp-control", total, body, dport
    if dport == CORECAST_PORT:
        return "corecast-service", total, body, dport
    return "other", total, body, dport


def write_pcap(path: str, frames, linktype: int = LINKTYPE_ETHERNET, start: float = 0.0,
               step: float = 1e-6) -> int:
    """Write ``frames`` (an iterable of bytes) as a classic pcap; return the number written.

    For tests and benchmarks: timestamps start at ``start`` and advance by ``step``.
    """
    count = 0
    rec = struct.Struct("<IIII")
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for frame in frames:
            stamp = start + count * step
            sec = int(stamp)
            out.write(rec.pack(sec, int(round((stamp - sec) * 1e6)) % 1000000, len(frame), len(frame)))
            out.write(frame)
            count += 1
    return count


def _open(path: str):
    """Open a capture with scapy's RawPcapReader; CaptureError if it is missing or not a capture."""
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader
    try:
        return RawPcapReader(path)
    except FileNotFoundError as err:
        raise CaptureError(f"{path}: no such file") from err
    except IsADirectoryError as err:
        raise CaptureError(f"{path}: is a directory") from err
    except (Scapy_Exception, OSError, EOFError, struct.error, ValueError) as err:
        raise CaptureError(f"{path}: not a pcap or pcapng capture ({err})") from err


def _frames(reader) -> Iterator[tuple[bytes, object]]:
    """Yield (frame, metadata), turning a damaged tail into CaptureError."""
    from scapy.error import Scapy_Exception
    try:
        yield from reader
    except (Scapy_Exception, struct.error, EOFError, ValueError) as err:
        raise CaptureError(f"damaged capture: {err}") from err


def _linktype(reader, meta) -> int:
    return getattr(meta, "linktype", None) or reader.linktype


def _control_ok(frame: bytes, body: int, total: int, ip_off: int) -> bool:
    end = min(len(frame), ip_off + total)
    try:
        decode_control(frame[body:end])
    except DecodeError:
        return False
    return True


def _service_ok(frame: bytes, body: int, total: int, ip_off: int) -> bool:
    try:
        cc.peek_type(frame[body:min(len(frame), ip_off + total)])
    except DecodeError:
        return False
    return True


def count_capture(path: str) -> CaptureTotals:
    """Count packets and IP bytes per message type in the capture at ``path``.

    Malformed packets are counted as ``malformed``, never raised; an unreadable
    file raises :class:`CaptureError`.
    """
    totals = CaptureTotals()
    packets, nbytes = totals.packets, totals.bytes
    with _open(path) as reader:
        fixed = getattr(reader, "linktype", None)
        totals.linktype = fixed
        for frame, meta in _frames(reader):
            linktype = fixed if fixed is not None else _linktype(reader, meta)
            off = _ip_offset(linktype, frame)
            if off < 0:
                packets["other"] += 1
                continue
            kind, total, body, _ = classify(frame, off)
            if kind == "lisp-control" and not _control_ok(frame, body, total, off):
                kind = "malformed"
            elif kind == "corecast-service" and not _service_ok(frame, body, total, off):
                kind = "malformed"
            packets[kind] += 1
            nbytes[kind] += total
    return totals


def _timestamp(reader, meta) -> float:
    if hasattr(meta, "tshigh"):
        return ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
    return meta.sec + meta.usec / (1e9 if getattr(reader, "nano", False) else 1e6)


def _control_summary(msg: object) -> tuple[str, str]:
    """Return (message name, destination EID / detail) of a decoded control message."""
    def recs(records: list[EidRecord]) -> str:
        return ",".join(r.prefix + ("" if r.locators else "(negative)") for r in records) or "-"
    if isinstance(msg, MapRequest):
        return "map-request", ",".join(msg.eids) or "-"
    if isinstance(msg, MapReply):
        return "map-reply", recs(msg.records)
    if isinstance(msg, MapRegister):
        return "map-register", recs(msg.records)
    if isinstance(msg, MapNotify):
        return "map-notify", recs(msg.records)
    if isinstance(msg, Ecm):
        try:
            inner = decode_control(msg.payload)
        except DecodeError as err:
            return "ecm", f"inner {err.reason}"
        name, eid = _control_summary(inner)
        return f"ecm({name})", eid
    return "control", "-"


def describe(frame: bytes, off: int) -> tuple[str, int, str, str, str, str, str]:
    """Return (kind, IP length, src, dst, stream, seq, destination EID or detail) of one IPv4 packet."""
    kind, total, body, _ = classify(frame, off)
    if len(frame) < off + 20:
        return kind, total, "?", "?", "-", "-", "-"
    src, dst = socket.inet_ntoa(frame[off + 12:off + 16]), socket.inet_ntoa(frame[off + 16:off + 20])
    end = min(len(frame), off + total)
    stream = seq = eid = "-"
    if kind in ("corecast-data", "corecast-ref", "corecast-service"):
        start = body + 8 if kind != "corecast-service" else body
        try:
            msg = cc.decode(frame[start:end])
        except DecodeError as err:
            return "malformed", total, src, dst, "-", "-", err.reason
        stream, seq = str(msg.stream_id), str(msg.seq)
        if isinstance(msg, cc.CoreCastRef):
            eid = f"{socket.inet_ntoa(msg.dst_eid)}:{msg.dst_port}"
            if kind == "corecast-service":
                kind = "corecast-service-ref"
        elif kind == "corecast-service":
            kind = "corecast-service-data"
    elif kind == "lisp-unicast":
        inner = body + 8
        if len(frame) >= inner + 20 and frame[inner] >> 4 == 4:
            eid = socket.inet_ntoa(frame[inner + 16:inner + 20])
    elif kind == "lisp-control":
        try:
            name, eid = _control_summary(decode_control(frame[body:end]))
        except DecodeError as err:
            return "malformed", total, src, dst, "-", "-", f"control {err.reason}"
        kind = f"lisp-control {name}"
    return kind, total, src, dst, stream, seq, eid


def _print_totals(totals: CaptureTotals, out) -> None:
    print(f"{'type':<18} {'packets':>10} {'ip_bytes':>14}", file=out)
    for kind in KINDS:
        print(f"{kind:<18} {totals.packets[kind]:>10} {totals.bytes[kind]:>14}", file=out)
    print(f"{'total':<18} {totals.total_packets:>10} {sum(totals.bytes.values()):>14}", file=out)


def decode_command(path: str, detail: bool = False, limit: int | None = None, totals_only: bool = False) -> int:
    """``corecast decode``: one line per packet (time, outer src > dst, type, stream, seq, destination EID),
    then totals per type over the whole capture. ``detail`` shows each packet with scapy's ``show()``;
    ``limit`` stops the per-packet lines after N packets; ``totals_only`` prints only the totals.
    Returns 0, or 2 with a one-line error on stderr for a missing or unreadable capture.
    """
    out = sys.stdout
    try:
        if not totals_only:
            _print_packets(path, detail, limit, out)
        totals = count_capture(path)
    except CaptureError as err:
        print(f"corecast decode: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    _print_totals(totals, out)
    return 0


def _print_packets(path: str, detail: bool, limit: int | None, out) -> None:
    if detail:
        import testbed.layers  # noqa: F401  (binds the layers to their ports)
        from scapy.config import conf
    with _open(path) as reader:
        fixed = getattr(reader, "linktype", None)
        first: float | None = None
        for index, (frame, meta) in enumerate(_frames(reader)):
            if limit is not None and index >= limit:
                break
            stamp = _timestamp(reader, meta)
            first = stamp if first is None else first
            linktype = fixed if fixed is not None else _linktype(reader, meta)
            off = _ip_offset(linktype, frame)
            if off < 0:
                print(f"{stamp - first:12.6f}  {'-':>31}  other", file=out)
            else:
                kind, total, src, dst, stream, seq, eid = describe(frame, off)
                addrs = f"{src} > {dst}"
                print(f"{stamp - first:12.6f}  {addrs:>31}  {kind:<28} stream={stream} seq={seq} "
                      f"dst={eid} len={total}", file=out)
            if detail:
                cls = conf.l2types.get(linktype)
                if cls is not None:
                    cls(frame).show(dump=False)
