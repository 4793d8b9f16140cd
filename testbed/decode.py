"""LISP- and CoreCast-aware reading of captures: fast per-type totals and ``corecast decode``.

:func:`count_capture` walks a pcap/pcapng (:mod:`testbed.capfile`: every link
layer tcpdump and Wireshark write, VLAN tags included) with the fast codecs (no
scapy dissection) and sums, per message type, packets and IP total lengths; the
experiments use it for ``core_bytes``. :func:`decode_command` prints one line
per packet and the totals; ``detail=True`` shows scapy's view.

Message types (the outer IPv4/UDP header decides):

* ``lisp-unicast``: UDP 4341 without the C bit (an encapsulated IP packet);
* ``corecast-data`` / ``corecast-ref``: UDP 4341 with the C bit, by CoreCast type;
* ``lisp-control``: UDP 4342 (either port);
* ``corecast-service``: UDP 4340 (CoreCast messages from the source to its ITR);
* ``other``: anything else that is IPv4, or not IPv4 at all;
* ``malformed``: an inconsistent IP or UDP header, or a LISP/CoreCast message
  that the fast codec rejects.

A packet cut by the capture's snap length (``tcpdump -s 64``: the frame holds
fewer bytes than the wire had) is counted by what its headers say, with its IP
total length, and never as ``malformed`` for the bytes it lacks: a cut LISP
control message by its port and (when present) its type nibble; a cut CoreCast
message by its type byte, or by its length (a REF is 68 IP bytes) when that byte
was cut too; a LISP data packet cut before its first LISP byte counts
``lisp-unicast`` (the C bit is unknown; ``core_bytes`` stays exact); a packet
cut before its UDP ports counts ``other``.
"""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass, field
from typing import Iterable

from testbed.capfile import CaptureError, Frame, ip_offset, read_capture, write_pcap, write_pcapng  # noqa: F401
from testbed.capfile import (LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL,  # noqa: F401
                             LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL, LINKTYPE_RAW)
from testbed.datamatch import DataMatch
from testbed.wire import corecast as cc
from testbed.wire.constants import CORECAST_PORT, LISP_DATA_PORT, LISP_CONTROL_PORT, LISP_FLAG_C
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import (TYPE_ECM, TYPE_MAP_NOTIFY, TYPE_MAP_REGISTER, TYPE_MAP_REPLY, TYPE_MAP_REQUEST,
                                   Ecm, EidRecord, MapNotify, MapRegister, MapReply, MapRequest, decode_control)

KINDS = ("lisp-unicast", "corecast-data", "corecast-ref", "lisp-control", "corecast-service", "other", "malformed")
"""Every message type :func:`count_capture` reports, in display order."""

_IPFIX = struct.Struct("!BxH5xB")  # ver/ihl, total length, protocol
_PORTS = struct.Struct("!HH")
_CONTROL_TYPES = (TYPE_MAP_REQUEST, TYPE_MAP_REPLY, TYPE_MAP_REGISTER, TYPE_MAP_NOTIFY, TYPE_ECM)


@dataclass
class CaptureTotals:
    """Packets and summed IP total lengths per message type (see :data:`KINDS`)."""

    packets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    linktypes: set[int] = field(default_factory=set)
    """The link types of the capture's interfaces that carried packets."""
    cut: int = 0
    """Packets the capture kept only in part (snap length), each counted by its headers."""
    native_packets: int = 0
    """Of the ``other`` packets, those a mode's own data match selected (``count_capture(matches=...)``)."""
    native_bytes: int = 0
    """Their IP total lengths."""

    @property
    def data_packets(self) -> int:
        """A mode's data packets: LISP data (UDP 4341) plus its own matched packets (native multicast)."""
        return self.lisp_data_packets + self.native_packets

    @property
    def data_bytes(self) -> int:
        """IP bytes of :attr:`data_packets`: what the links' nft counters count as data."""
        return self.lisp_data_bytes + self.native_bytes

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


def classify(frame: bytes, off: int, cut: bool = False) -> tuple[str, int, int, int]:
    """Return (kind, IP total length, offset of the UDP payload, UDP destination port) of the IPv4 packet at ``off``.

    Only headers are checked here (the fast path); LISP control and service
    messages are validated by :func:`kind_of`. ``cut``: the capture kept only
    the first bytes of the packet (snap length), so bytes past the frame's end
    are missing, not wrong; the packet is typed by the headers present (see the
    module docstring). Without ``cut`` a frame shorter than its headers is
    ``malformed``.
    """
    n = len(frame)
    if n < off + 20:
        if cut:
            return "other", ((frame[off + 2] << 8) | frame[off + 3]) if n >= off + 4 else 0, 0, 0
        return "malformed", 0, 0, 0
    vihl, total, proto = _IPFIX.unpack_from(frame, off)
    ihl = (vihl & 0x0F) << 2
    if vihl >> 4 != 4 or ihl < 20 or total < ihl:
        return "malformed", total, 0, 0
    if proto != 17 or (frame[off + 6] & 0x1F) or frame[off + 7]:  # not UDP, or a non-first fragment
        return "other", total, 0, 0
    udp = off + ihl
    if total < ihl + 8:
        return "malformed", total, 0, 0
    if n < udp + 8 and not (cut and n >= udp + 4):
        return ("other" if cut else "malformed"), total, 0, 0
    sport, dport = _PORTS.unpack_from(frame, udp)
    body = udp + 8
    if dport == LISP_DATA_PORT or sport == LISP_DATA_PORT:
        if total < ihl + 16:
            return "malformed", total, body, dport
        if n < body + 8 and not (cut and n > body):
            return ("lisp-unicast" if cut else "malformed"), total, body, dport
        if not frame[body] & LISP_FLAG_C:
            return "lisp-unicast", total, body, dport
        if total < ihl + 16 + cc.CORECAST_HEADER:
            return "malformed", total, body, dport
        is_ref_size = total == ihl + 16 + cc.CORECAST_REF
        if n < body + 9:
            if cut:  # the type byte was cut: the length tells a REF
                return ("corecast-ref" if is_ref_size else "corecast-data"), total, body, dport
            return "malformed", total, body, dport
        first = frame[body + 8]
        if first == 0x11:
            return "corecast-data", total, body, dport
        if first == 0x12 and is_ref_size:
            return "corecast-ref", total, body, dport
        if first == 0x13 and _ref_list_ok(frame, body + 8, total - ihl - 16, cut):  # REF-LISTs count as REFs
            return "corecast-ref", total, body, dport
        if first == 0x14 and _ref_map_ok(frame, body + 8, total - ihl - 16, cut):  # REF-MAPs too
            return "corecast-ref", total, body, dport
        return "malformed", total, body, dport
    if dport == LISP_CONTROL_PORT or sport == LISP_CONTROL_PORT:
        return "lisp-control", total, body, dport
    if dport == CORECAST_PORT:
        return "corecast-service", total, body, dport
    return "other", total, body, dport


def _ref_list_ok(frame: bytes, start: int, length: int, cut: bool) -> bool:
    """Whether the REF-LIST of ``length`` bytes at ``start`` is well formed (by its count if it was cut)."""
    if len(frame) < start + cc.REF_LIST_HEADER:
        return cut and length >= cc.REF_LIST_HEADER
    count = (frame[start + 30] << 8) | frame[start + 31]
    return count > 0 and length == cc.REF_LIST_HEADER + cc.REF_LIST_ENTRY * count


def _ref_map_ok(frame: bytes, start: int, length: int, cut: bool) -> bool:
    """Whether the REF-MAP of ``length`` bytes at ``start`` is well formed (by its header if it was cut)."""
    if len(frame) < start + length:
        return cut and length > cc.REF_MAP_HEADER
    return cc.ref_map_fault(frame[start:start + length]) is None


def _message_ok(kind: str, frame: bytes, body: int, total: int, off: int, cut: bool) -> bool:
    """Whether a control or service message (UDP payload at ``body``) is well formed, as far as it was kept."""
    end = off + total
    if cut and len(frame) < end:  # only the first bytes are here: check what they say
        if len(frame) <= body:
            return True
        first = frame[body]
        if kind == "lisp-control":
            return first >> 4 in _CONTROL_TYPES
        if first >> 4 != cc.VERSION:
            return False
        return (first & 0x0F == cc.TYPE_DATA or (first & 0x0F == cc.TYPE_REF and end - body == cc.CORECAST_REF)
                or (first & 0x0F == cc.TYPE_REF_LIST and end - body >= cc.REF_LIST_HEADER)
                or (first & 0x0F == cc.TYPE_REF_MAP and end - body > cc.REF_MAP_HEADER))
    try:
        if kind == "lisp-control":
            decode_control(frame[body:min(len(frame), end)])
        else:
            cc.peek_type(frame[body:min(len(frame), end)])
    except DecodeError:
        return False
    return True


def kind_of(frame: Frame) -> tuple[str, int, int]:
    """Return (kind, IP total length, IPv4 offset or -1) of one captured frame."""
    data, linktype, _time, wirelen = frame
    off = ip_offset(linktype, data)
    if off < 0:
        return "other", 0, -1
    cut = wirelen > len(data)
    kind, total, body, _ = classify(data, off, cut)
    if (kind == "lisp-control" or kind == "corecast-service") and not _message_ok(kind, data, body, total, off, cut):
        kind = "malformed"
    return kind, total, off


def count_capture(path: str, matches: Iterable[DataMatch] = ()) -> CaptureTotals:
    """Count packets and IP bytes per message type in the capture at ``path``.

    ``matches``: a mode's own data (:attr:`testbed.modes.Mode.link_data`); ``other``
    packets they select are also summed in ``native_packets``/``native_bytes`` (so
    ``data_bytes`` counts what the links' nft counters count). Malformed packets are
    counted as ``malformed``, never raised; an unreadable file raises :class:`CaptureError`.
    """
    totals = CaptureTotals()
    packets, nbytes, linktypes = totals.packets, totals.bytes, totals.linktypes
    matches = tuple(matches)
    cut = 0
    for frame in read_capture(path):
        kind, total, off = kind_of(frame)
        packets[kind] += 1
        nbytes[kind] += total
        if matches and kind == "other" and off >= 0 and any(m.matches(frame[0], off) for m in matches):
            totals.native_packets += 1
            totals.native_bytes += total
        linktypes.add(frame[1])
        if frame[3] > len(frame[0]):
            cut += 1
    totals.cut = cut
    return totals


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


def describe(frame: Frame) -> tuple[str, int, str, str, str, str, str]:
    """Return (kind, IP length, src, dst, stream, seq, destination EID or detail) of one captured frame.

    Details come from the bytes kept; a cut message shows what its headers say and ``cut`` as detail.
    """
    kind, total, off = kind_of(frame)
    data = frame.data
    if off < 0 or len(data) < off + 20:
        return kind, total, "?", "?", "-", "-", "-"
    src, dst = socket.inet_ntoa(data[off + 12:off + 16]), socket.inet_ntoa(data[off + 16:off + 20])
    end = off + total
    if kind not in KINDS[:5]:
        return kind, total, src, dst, "-", "-", "-"
    body = off + ((data[off] & 0x0F) << 2) + 8
    if len(data) < end:  # cut by the snap length: only the kind is known
        return kind, total, src, dst, "-", "-", "cut"
    stream = seq = eid = "-"
    if kind in ("corecast-data", "corecast-ref", "corecast-service"):
        start = body + 8 if kind != "corecast-service" else body
        try:
            msg = cc.decode(data[start:end])
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
        if len(data) >= inner + 20 and data[inner] >> 4 == 4:
            eid = socket.inet_ntoa(data[inner + 16:inner + 20])
    elif kind == "lisp-control":
        name, eid = _control_summary(decode_control(data[body:end]))  # well formed: kind_of checked it
        kind = f"lisp-control {name}"
    return kind, total, src, dst, stream, seq, eid


def _print_totals(totals: CaptureTotals, out) -> None:
    print(f"{'type':<18} {'packets':>10} {'ip_bytes':>14}", file=out)
    for kind in KINDS:
        print(f"{kind:<18} {totals.packets[kind]:>10} {totals.bytes[kind]:>14}", file=out)
    print(f"{'total':<18} {totals.total_packets:>10} {sum(totals.bytes.values()):>14}", file=out)
    if totals.cut:
        print(f"({totals.cut} packets cut by the capture's snap length, each counted by its headers)", file=out)


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
    first: float | None = None
    for index, frame in enumerate(read_capture(path)):
        if limit is not None and index >= limit:
            break
        first = frame.time if first is None else first
        kind, total, src, dst, stream, seq, eid = describe(frame)
        if src == "?":
            print(f"{frame.time - first:12.6f}  {'-':>31}  {kind}", file=out)
        else:
            addrs = f"{src} > {dst}"
            print(f"{frame.time - first:12.6f}  {addrs:>31}  {kind:<28} stream={stream} seq={seq} "
                  f"dst={eid} len={total}", file=out)
        if detail:
            cls = conf.l2types.get(frame.linktype)
            if cls is not None:
                cls(frame.data).show(dump=False)
