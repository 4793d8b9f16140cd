"""Capture files: reading pcap and pcapng, finding the IPv4 header behind every link layer, writing test captures.

:func:`read_capture` yields one :class:`Frame` per captured packet of a classic
pcap (microsecond or nanosecond, either byte order) or a pcapng file (every
section, every interface with its own link type and time resolution; Enhanced,
Simple and the obsolete Packet Blocks). The file is memory-mapped and walked
with ``struct``: no per-packet dissection (see docs/results.md for the rates).

:func:`ip_offset` finds the IPv4 header behind the link layers that tcpdump,
dumpcap and Wireshark write (tcpdump.org link-type list):

===========  ======================================================================
link type    header before the network layer
===========  ======================================================================
0 NULL       4-byte address family in the capturing host's byte order (2 = IPv4)
1 ETHERNET   14 bytes; 802.1Q/802.1ad tags (0x8100, 0x88a8, 0x9100, 0x9200, any
             depth: QinQ) and 802.2 LLC/SNAP walked
12, 14, 101  raw IP (DLT_RAW on the BSDs, and LINKTYPE_RAW)
108 LOOP     4-byte address family in network byte order
113 SLL      Linux cooked v1 (``tcpdump -i any``): 16 bytes, protocol at 14; VLAN
             tags that libpcap re-inserts (protocol 0x8100, then the tag) walked
228 IPV4     raw IPv4
276 SLL2     Linux cooked v2: 20 bytes, protocol at 0; tags walked as for SLL
===========  ======================================================================

Any other link type is a :class:`CaptureError` (the file cannot be read), never
a miscount. :func:`write_pcap` and :func:`write_pcapng` write captures for tests
and benchmarks.
"""

from __future__ import annotations

import mmap
import struct
from typing import Iterable, Iterator, NamedTuple

LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP = 0, 1, 108
LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_LINUX_SLL2 = 101, 113, 228, 276
RAW_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_IPV4, 12, 14)
"""Link types whose frames start with the IP header (12 and 14: DLT_RAW on some BSDs)."""
LINKTYPES = (LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
             *RAW_LINKTYPES)
"""Every link type :func:`ip_offset` reads."""
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
"""802.1Q, 802.1ad (QinQ outer tag) and the pre-standard QinQ tag protocol identifiers."""
ETH_IPV4 = 0x0800
AF_INET = 2

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
_NG_SHB = 0x0A0D0D0A
_NG_IDB, _NG_PB, _NG_SPB, _NG_EPB = 1, 2, 3, 6


class CaptureError(Exception):
    """The file cannot be read as a capture (missing, not pcap/pcapng, damaged, unsupported link type)."""


class Frame(NamedTuple):
    """One captured packet: the bytes kept (``data``), its link type, time (s) and length on the wire."""

    data: bytes
    linktype: int
    time: float
    wirelen: int

    @property
    def cut(self) -> bool:
        """True if the capture kept fewer bytes than the packet had (snap length)."""
        return self.wirelen > len(self.data)


def _after_ethertype(frame: bytes, etype: int, off: int) -> int:
    """Walk VLAN tags and LLC/SNAP from an EtherType (or 802.3 length) at ``off``; IPv4 offset or -1."""
    n = len(frame)
    while etype in VLAN_TPIDS:
        if n < off + 4:
            return -1
        etype = (frame[off + 2] << 8) | frame[off + 3]
        off += 4
    if etype <= 1500:  # 802.3 length (or SLL's 0x0004): an 802.2 LLC header, IP only behind SNAP
        if n < off + 8 or frame[off:off + 3] != b"\xaa\xaa\x03":
            return -1
        etype = (frame[off + 6] << 8) | frame[off + 7]
        off += 8
    return off if etype == ETH_IPV4 else -1


def ip_offset(linktype: int, frame: bytes) -> int:
    """Return the offset of the IPv4 header in ``frame``, or -1 if the frame holds no IPv4 packet.

    Raise :class:`CaptureError` for a link type not in :data:`LINKTYPES`.
    """
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET:
        return _after_ethertype(frame, (frame[12] << 8) | frame[13], 14) if n >= 14 else -1
    if linktype == LINKTYPE_LINUX_SLL:
        return _after_ethertype(frame, (frame[14] << 8) | frame[15], 16) if n >= 16 else -1
    if linktype == LINKTYPE_LINUX_SLL2:
        return _after_ethertype(frame, (frame[0] << 8) | frame[1], 20) if n >= 20 else -1
    if linktype in RAW_LINKTYPES:
        return 0 if n and frame[0] >> 4 == 4 else -1
    if linktype == LINKTYPE_NULL:  # host byte order of the machine that captured: accept both
        return 4 if n >= 4 and AF_INET in (int.from_bytes(frame[:4], "little"), int.from_bytes(frame[:4], "big")) \
            else -1
    if linktype == LINKTYPE_LOOP:
        return 4 if n >= 4 and int.from_bytes(frame[:4], "big") == AF_INET else -1
    raise CaptureError(f"unsupported link type {linktype}")


def _map(path: str):
    try:
        fh = open(path, "rb")
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CaptureError(f"{path}: is a directory") from None
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror}") from None
    with fh:
        try:
            return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            raise CaptureError(f"{path}: not a pcap or pcapng capture (empty file)") from None
        except OSError as exc:
            raise CaptureError(f"{path}: {exc.strerror}") from None


def read_capture(path: str) -> Iterator[Frame]:
    """Yield every packet of the pcap or pcapng file at ``path`` as a :class:`Frame`.

    Raise :class:`CaptureError` (with the file and the reason, one line) if the
    file is missing, is not a capture, names an unsupported link type or is
    damaged (a record runs past the end of the file). A check happens at the
    first ``next()``, so wrap the iteration, not only the call.
    """
    buf = _map(path)
    with buf:
        magic = buf[:4]
        if magic in _PCAP_MAGIC:
            yield from _read_pcap(path, buf, *_PCAP_MAGIC[magic])
        elif len(buf) >= 12 and magic == b"\x0a\x0d\x0d\x0a":
            yield from _read_pcapng(path, buf)
        else:
            raise CaptureError(f"{path}: not a pcap or pcapng capture")


def _read_pcap(path: str, buf, endian: str, unit: float) -> Iterator[Frame]:
    if len(buf) < 24:
        raise CaptureError(f"{path}: not a pcap or pcapng capture (header cut)")
    linktype = struct.unpack_from(endian + "I", buf, 20)[0] & 0xFFFF  # the upper bits may carry FCS flags
    if linktype not in LINKTYPES:
        raise CaptureError(f"{path}: unsupported link type {linktype}")
    rec = struct.Struct(endian + "IIII")
    off, end = 24, len(buf)
    while off < end:
        if off + 16 > end:
            raise CaptureError(f"{path}: damaged capture: record header cut at byte {off}")
        sec, frac, caplen, wirelen = rec.unpack_from(buf, off)
        off += 16
        if off + caplen > end:
            raise CaptureError(f"{path}: damaged capture: record of {caplen} bytes runs past the end")
        yield Frame(buf[off:off + caplen], linktype, sec + frac * unit, max(wirelen, caplen))
        off += caplen


def _ng_options(buf, start: int, stop: int, endian: str) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    head = struct.Struct(endian + "HH")
    while start + 4 <= stop:
        code, length = head.unpack_from(buf, start)
        if code == 0:
            break
        opts.setdefault(code, bytes(buf[start + 4:start + 4 + length]))
        start += 4 + length + (-length % 4)
    return opts


def _tsresol(value: bytes | None) -> float:
    if not value:
        return 1e-6
    exp = value[0] & 0x7F
    return 2.0 ** -exp if value[0] & 0x80 else 10.0 ** -exp


def _read_pcapng(path: str, buf) -> Iterator[Frame]:
    off, end = 0, len(buf)
    endian = "<"
    ifaces: list[tuple[int, int, float]] = []  # (link type, snap length, seconds per tick) per interface

    def damaged(why: str) -> CaptureError:
        return CaptureError(f"{path}: damaged capture: {why} at byte {off}")

    while off + 12 <= end:
        btype = struct.unpack_from("<I", buf, off)[0]
        if btype == _NG_SHB:  # a new section: its own byte order and interfaces
            order = buf[off + 8:off + 12]
            if order == b"\x4d\x3c\x2b\x1a":
                endian = "<"
            elif order == b"\x1a\x2b\x3c\x4d":
                endian = ">"
            else:
                raise damaged("bad section byte-order magic")
            ifaces = []
        else:
            btype = struct.unpack_from(endian + "I", buf, off)[0]
        blen = struct.unpack_from(endian + "I", buf, off + 4)[0]
        if blen < 12 or blen % 4 or off + blen > end:
            raise damaged(f"block length {blen}")
        body, stop = off + 8, off + blen - 4
        if btype == _NG_IDB:
            if stop - body < 8:
                raise damaged("interface block cut")
            linktype, snaplen = struct.unpack_from(endian + "HxxI", buf, body)
            opts = _ng_options(buf, body + 8, stop, endian)
            if linktype not in LINKTYPES:
                raise CaptureError(f"{path}: unsupported link type {linktype}")
            ifaces.append((linktype, snaplen, _tsresol(opts.get(9))))
        elif btype in (_NG_EPB, _NG_PB, _NG_SPB):
            if btype == _NG_SPB:
                if stop - body < 4:
                    raise damaged("simple packet block cut")
                iface, high, low = 0, 0, 0
                wirelen = struct.unpack_from(endian + "I", buf, body)[0]
                start = body + 4
                snap = ifaces[0][1] if ifaces else 0
                caplen = min(wirelen, stop - start, snap or wirelen)
            else:
                if stop - body < 20:
                    raise damaged("packet block cut")
                if btype == _NG_EPB:
                    iface, high, low, caplen, wirelen = struct.unpack_from(endian + "5I", buf, body)
                else:
                    iface, _drops, high, low, caplen, wirelen = struct.unpack_from(endian + "HH4I", buf, body)
                start = body + 20
                if start + caplen > stop:
                    raise damaged(f"packet of {caplen} bytes runs past its block")
            if iface >= len(ifaces):
                raise damaged(f"packet on undescribed interface {iface}")
            linktype, _snap, tick = ifaces[iface]
            yield Frame(buf[start:start + caplen], linktype, ((high << 32) | low) * tick, max(wirelen, caplen))
        off += blen
    if off != end:
        raise damaged("block header cut")


def write_pcap(path: str, frames: Iterable[bytes], linktype: int = LINKTYPE_ETHERNET, start: float = 0.0,
               step: float = 1e-6, snaplen: int | None = None) -> int:
    """Write ``frames`` as a classic pcap (microseconds, little-endian); return the number written.

    For tests and benchmarks: timestamps start at ``start`` and advance by ``step``;
    ``snaplen`` cuts each frame as ``tcpdump -s`` would (its wire length is kept).
    """
    count = 0
    rec = struct.Struct("<IIII")
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen or 262144, linktype))
        for frame in frames:
            stamp = start + count * step
            sec = int(stamp)
            kept = frame[:snaplen] if snaplen else frame
            out.write(rec.pack(sec, int(round((stamp - sec) * 1e6)) % 1000000, len(kept), len(frame)))
            out.write(kept)
            count += 1
    return count


def _ng_block(btype: int, body: bytes, endian: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    size = len(body) + 12
    return struct.pack(endian + "II", btype, size) + body + struct.pack(endian + "I", size)


def write_pcapng(path: str, linktypes: list[int], packets: Iterable[tuple[int, bytes]], simple: bool = False,
                 snaplen: int = 0, start: float = 0.0, step: float = 1e-6, endian: str = "<") -> int:
    """Write a pcapng section: one interface per entry of ``linktypes``, then ``packets``.

    ``packets`` are ``(interface index, frame)``; Enhanced Packet Blocks, or Simple
    Packet Blocks when ``simple`` (which always belong to interface 0). ``snaplen``
    (0: none) is written into every interface block and cuts the frames; ``endian``
    is the section's byte order ("<" or ">"). Two files written so and concatenated
    make one capture of two sections. For tests.
    """
    count = 0
    e = endian
    with open(path, "wb") as out:
        out.write(_ng_block(_NG_SHB, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e))
        for linktype in linktypes:
            out.write(_ng_block(_NG_IDB, struct.pack(e + "HHI", linktype, 0, snaplen), e))
        for iface, frame in packets:
            kept = frame[:snaplen] if snaplen else frame
            if simple:
                out.write(_ng_block(_NG_SPB, struct.pack(e + "I", len(frame)) + kept, e))
            else:
                ticks = int(round((start + count * step) * 1e6))
                out.write(_ng_block(_NG_EPB, struct.pack(e + "5I", iface, ticks >> 32, ticks & 0xFFFFFFFF,
                                                         len(kept), len(frame)) + kept, e))
            count += 1
    return count
