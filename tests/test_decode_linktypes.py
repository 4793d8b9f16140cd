"""count_capture over every link layer and tag layout tcpdump and Wireshark write, pcapng blocks, and cut packets.

Frames are built with scapy's link layers (Ethernet, 802.1Q/802.1ad, Linux cooked
v1 and v2, BSD loopback) or by hand where scapy has no layer (802.3 + LLC/SNAP,
big-endian NULL, LOOP); the IP packets are the fixtures of test_decode.
"""

from __future__ import annotations

import socket
import struct
import subprocess

import pytest
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, PcapWriter

from testbed.capfile import (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP,
                             LINKTYPE_NULL, LINKTYPE_RAW, CaptureError, read_capture, write_pcap, write_pcapng)
from testbed.decode import count_capture, decode_command
from testbed.wire import lispctrl as lc
from testbed.wire.ipv4 import build_ipv4_udp
from tests.test_decode import _expected, _ip_packets

A = socket.inet_aton
MAC = "02:00:00:00:00:01"


def _eth(*tags) -> callable:
    def build(ip: bytes) -> bytes:
        pkt = Ether(src=MAC, dst=MAC)
        for tag in tags:
            pkt = pkt / tag
        return bytes(pkt / Raw(ip)) if tags else bytes(Ether(src=MAC, dst=MAC, type=0x0800) / Raw(ip))
    return build


def _cooked(cls, *tags) -> callable:
    def build(ip: bytes) -> bytes:
        if not tags:
            return bytes(cls(proto=0x0800) / Raw(ip))
        pkt = cls(proto=tags[0][0])
        for i, (_tpid, vlan) in enumerate(tags):
            inner = tags[i + 1][0] if i + 1 < len(tags) else 0x0800
            pkt = pkt / Dot1Q(vlan=vlan, type=inner)
        return bytes(pkt / Raw(ip))
    return build


def _llc_snap(ip: bytes) -> bytes:
    llc = b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
    return b"\x02" * 6 + b"\x04" * 6 + struct.pack("!H", len(llc) + len(ip)) + llc + ip


LAYOUTS = {
    "ethernet": (LINKTYPE_ETHERNET, _eth()),
    "ethernet-802.1q": (LINKTYPE_ETHERNET, _eth(Dot1Q(vlan=5, type=0x0800))),
    "ethernet-qinq": (LINKTYPE_ETHERNET, _eth(Dot1AD(vlan=3, type=0x8100), Dot1Q(vlan=5, type=0x0800))),
    "ethernet-qinq-9100": (LINKTYPE_ETHERNET, lambda ip: b"\x02" * 12 + b"\x91\x00\x00\x03\x81\x00\x00\x05\x08\x00"
                           + ip),
    "ethernet-llc-snap": (LINKTYPE_ETHERNET, _llc_snap),
    "sll": (LINKTYPE_LINUX_SLL, _cooked(CookedLinux)),
    "sll-vlan": (LINKTYPE_LINUX_SLL, _cooked(CookedLinux, (0x8100, 5))),
    "sll-qinq": (LINKTYPE_LINUX_SLL, _cooked(CookedLinux, (0x88A8, 3), (0x8100, 5))),
    "sll2": (LINKTYPE_LINUX_SLL2, _cooked(CookedLinuxV2)),
    "sll2-vlan": (LINKTYPE_LINUX_SLL2, _cooked(CookedLinuxV2, (0x8100, 5))),
    "sll2-qinq": (LINKTYPE_LINUX_SLL2, _cooked(CookedLinuxV2, (0x88A8, 3), (0x8100, 5))),
    "raw-101": (LINKTYPE_RAW, lambda ip: ip),
    "raw-12": (12, lambda ip: ip),
    "raw-14": (14, lambda ip: ip),
    "ipv4-228": (228, lambda ip: ip),
    "null-host-order": (LINKTYPE_NULL, lambda ip: bytes(Loopback() / Raw(ip))),
    "null-big-endian": (LINKTYPE_NULL, lambda ip: b"\x00\x00\x00\x02" + ip),
    "loop": (LINKTYPE_LOOP, lambda ip: b"\x00\x00\x00\x02" + ip),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_link_layer_counts_alike(tmp_path, layout):
    linktype, build = LAYOUTS[layout]
    packets = _ip_packets()
    path = tmp_path / "c.pcap"
    write_pcap(str(path), (build(ip) for _, ip in packets), linktype)
    totals = count_capture(str(path))
    count, size = _expected(packets)
    assert totals.packets == count and totals.bytes == size
    assert totals.bytes["corecast-ref"] == 2 * 68 and totals.bytes["corecast-data"] == 48 + 1200
    assert totals.linktypes == {linktype} and totals.cut == 0


def test_sll_vlan_frame_bytes_are_what_tcpdump_any_writes():
    ip = _ip_packets()[2][1]
    frame = LAYOUTS["sll-vlan"][1](ip)
    assert frame[14:16] == b"\x81\x00" and frame[16:20] == b"\x00\x05\x08\x00" and frame[20:] == ip
    frame2 = LAYOUTS["sll2-qinq"][1](ip)
    assert frame2[0:2] == b"\x88\xa8" and frame2[20:28] == b"\x00\x03\x81\x00\x00\x05\x08\x00"


def test_tags_without_ipv4_behind_are_other(tmp_path):
    ip = _ip_packets()[2][1]
    frames = [b"\x02" * 12 + b"\x81\x00\x00\x05\x86\xdd" + bytes(40),   # VLAN, then IPv6
              b"\x02" * 12 + b"\x81\x00\x00",                         # tag cut
              b"\x02" * 12 + b"\x00\x30\xaa\xaa\x03\x00\x00\x00\x08\x06" + bytes(28),  # SNAP ARP
              b"\x02" * 12 + b"\x00\x30\xe0\xe0\x03" + ip]           # LLC, not SNAP
    path = tmp_path / "t.pcap"
    write_pcap(str(path), frames)
    totals = count_capture(str(path))
    assert totals.packets["other"] == 4 and totals.total_packets == 4


def test_pcapng_interfaces_of_different_link_types(tmp_path):
    packets = _ip_packets()
    order = list(LAYOUTS)
    linktypes = [LAYOUTS[name][0] for name in order]
    path = tmp_path / "multi.pcapng"
    write_pcapng(str(path), linktypes, [(i % len(order), LAYOUTS[order[i % len(order)]][1](ip))
                                        for i, (_, ip) in enumerate(packets)])
    count, size = _expected(packets)
    totals = count_capture(str(path))
    assert totals.packets == count and totals.bytes == size
    assert totals.linktypes == {linktypes[i % len(order)] for i in range(len(packets))}


def test_pcapng_simple_packet_blocks(tmp_path):
    packets = _ip_packets()
    path = tmp_path / "spb.pcapng"
    write_pcapng(str(path), [LINKTYPE_LINUX_SLL2], [(0, LAYOUTS["sll2-vlan"][1](ip)) for _, ip in packets],
                 simple=True)
    count, size = _expected(packets)
    totals = count_capture(str(path))
    assert totals.packets == count and totals.bytes == size


def test_pcapng_big_endian_sections_with_their_own_interfaces(tmp_path):
    """Two sections (files concatenated), big- then little-endian, each numbering its interfaces from 0."""
    packets = _ip_packets()
    one, two = tmp_path / "be.pcapng", tmp_path / "le.pcapng"
    write_pcapng(str(one), [LINKTYPE_LOOP, LINKTYPE_LINUX_SLL], [(i % 2, LAYOUTS["loop" if i % 2 == 0 else "sll-qinq"]
                                                                    [1](ip)) for i, (_, ip) in enumerate(packets)],
                 endian=">")
    write_pcapng(str(two), [LINKTYPE_RAW], [(0, ip) for _, ip in packets], snaplen=64, simple=True)
    both = tmp_path / "both.pcapng"
    both.write_bytes(one.read_bytes() + two.read_bytes())
    count, size = _expected(packets)
    totals = count_capture(str(both))
    assert totals.linktypes == {LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_RAW}
    # the second section's cut copies count as the whole ones (the malformed samples stay malformed)
    assert totals.packets == {k: 2 * v for k, v in count.items()} and totals.bytes == {k: 2 * v for k, v in size.items()}
    assert totals.cut == sum(1 for _, ip in packets if len(ip) > 64)
    assert count_capture(str(one)).packets == count and count_capture(str(one)).bytes == size


def test_captures_written_by_scapy_and_wireshark(tmp_path):
    """Independent writers: scapy's pcapng and nanosecond big-endian pcap; Wireshark's mergecap for a pcapng
    whose interfaces have different link types (what dumpcap writes for several interfaces)."""
    packets = _ip_packets()
    count, size = _expected(packets)
    ng = tmp_path / "scapy.pcapng"
    with PcapNgWriter(str(ng)) as out:
        for _, ip in packets:
            out.write(CookedLinuxV2(LAYOUTS["sll2-vlan"][1](ip)))
    totals = count_capture(str(ng))
    assert totals.packets == count and totals.bytes == size and totals.linktypes == {LINKTYPE_LINUX_SLL2}
    nano = tmp_path / "nano.pcap"
    with PcapWriter(str(nano), nano=True, endianness=">", linktype=LINKTYPE_ETHERNET) as out:
        for i, (_, ip) in enumerate(packets):
            pkt = Ether(LAYOUTS["ethernet-802.1q"][1](ip))
            pkt.time = 10 + i * 0.25
            out.write(pkt)
    totals = count_capture(str(nano))
    assert totals.packets == count and totals.bytes == size
    stamps = [f.time for f in read_capture(str(nano))]
    assert stamps[1] - stamps[0] == pytest.approx(0.25)
    parts = []
    for name in ("ethernet-qinq", "sll-vlan", "null-host-order"):
        linktype, build = LAYOUTS[name]
        parts.append(str(tmp_path / f"{name}.pcap"))
        write_pcap(parts[-1], (build(ip) for _, ip in packets), linktype)
    merged = tmp_path / "merged.pcapng"
    # mergecap comes with tshark (Debian wireshark-common), which scripts/setup.sh installs
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), *parts], check=True, capture_output=True)
    totals = count_capture(str(merged))
    assert totals.linktypes == {LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_NULL}
    assert totals.packets == {k: 3 * v for k, v in count.items()} and totals.bytes == {k: 3 * v for k, v in size.items()}


def test_unsupported_and_damaged_files(tmp_path):
    path = tmp_path / "usb.pcap"
    write_pcap(str(path), [b"\x00" * 40], linktype=189)
    with pytest.raises(CaptureError, match="unsupported link type 189"):
        count_capture(str(path))
    ok = tmp_path / "ok.pcap"
    write_pcap(str(ok), [LAYOUTS["sll"][1](ip) for _, ip in _ip_packets()], LINKTYPE_LINUX_SLL)
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(ok.read_bytes()[:-7])
    with pytest.raises(CaptureError, match="damaged capture"):
        count_capture(str(cut))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match="not a pcap"):
        count_capture(str(empty))


# ----------------------------------------------------------------- item 8: short snap length

def _map_reply() -> bytes:
    rec = lc.EidRecord("10.1.0.0/16", ttl=60, locators=[lc.Locator("192.0.2.1"), lc.Locator("192.0.2.9")])
    return build_ipv4_udp(A("192.0.2.200"), A("192.0.2.1"), 4342, 4342, lc.MapReply(77, [rec]).encode())


@pytest.mark.parametrize("layout", ["ethernet", "ethernet-qinq", "sll-vlan", "sll2-vlan", "sll2-qinq", "raw-101"])
def test_snaplen_64_counts_cut_packets_by_their_headers(tmp_path, layout):
    linktype, build = LAYOUTS[layout]
    good = [(k, ip) for k, ip in _ip_packets() if k != "malformed"]
    good.append(("lisp-control", _map_reply()))
    frames = [build(ip) for _, ip in good]
    full, cut = tmp_path / "full.pcap", tmp_path / "cut.pcap"
    write_pcap(str(full), frames, linktype)
    write_pcap(str(cut), frames, linktype, snaplen=64)
    whole, short = count_capture(str(full)), count_capture(str(cut))
    count, size = _expected(good)
    assert whole.packets == count and whole.bytes == size
    assert short.packets == count and short.bytes == size
    assert short.packets["malformed"] == 0 and short.cut > 0
    reply_len = int.from_bytes(_map_reply()[2:4], "big")
    assert reply_len > 64 and short.control_bytes == size["lisp-control"] and reply_len <= short.control_bytes
    assert short.lisp_data_bytes == whole.lisp_data_bytes == 64 + 1200 + 48 + 1200 + 2 * 68


def test_snaplen_cuts_inside_the_headers(tmp_path):
    """Cut before the CoreCast type byte, before the LISP header, before the UDP ports, inside IP."""
    data = _ip_packets()[1][1]          # corecast-data, 1248 bytes
    ref = _ip_packets()[2][1]           # corecast-ref, 68 bytes
    cases = [(data, 36, "corecast-data"), (ref, 36, "corecast-ref"), (data, 29, "corecast-data"),
             (ref, 37, "corecast-ref"), (data, 28, "lisp-unicast"),
             (data, 22, "other"), (data, 10, "other"), (_map_reply(), 28, "lisp-control"),
             (_map_reply(), 29, "lisp-control")]
    for i, (ip, keep, kind) in enumerate(cases):
        path = tmp_path / f"c{i}.pcap"
        write_pcap(str(path), [ip], LINKTYPE_RAW, snaplen=keep)
        totals = count_capture(str(path))
        assert totals.packets[kind] == 1, (i, totals.packets)
        assert totals.bytes[kind] == int.from_bytes(ip[2:4], "big")


def test_cut_control_with_unknown_type_and_uncut_short_frames_stay_malformed(tmp_path):
    bad = build_ipv4_udp(A("192.0.2.2"), A("192.0.2.1"), 4342, 4342, b"\x70" + bytes(200))  # type 7
    path = tmp_path / "bad.pcap"
    write_pcap(str(path), [bad], LINKTYPE_RAW, snaplen=64)
    assert count_capture(str(path)).packets["malformed"] == 1
    short = tmp_path / "short.pcap"  # wire length == kept length, but IP says more: inconsistent, not cut
    write_pcap(str(short), [_map_reply()[:60]], LINKTYPE_RAW)
    assert count_capture(str(short)).packets["malformed"] == 1


def test_decode_command_shows_cut_packets(tmp_path, capsys):
    path = tmp_path / "cut.pcap"
    write_pcap(str(path), [LAYOUTS["sll2-vlan"][1](_map_reply())], LINKTYPE_LINUX_SLL2, snaplen=64)
    assert decode_command(str(path)) == 0
    out = capsys.readouterr().out.splitlines()
    assert "lisp-control" in out[0] and "dst=cut" in out[0]
    assert out[1 + 4].split()[:2] == ["lisp-control", "1"]
    assert out[-1] == "(1 packets cut by the capture's snap length, each counted by its headers)"


def test_iter_ip_packets_reads_every_layout(tmp_path):
    """The namespace checks' packet walker (testbed.net.capture) shares the reader: tags and cooked headers too."""
    from testbed.net.capture import CaptureError as NetCaptureError
    from testbed.net.capture import iter_ip_packets
    ip = _ip_packets()[4][1]  # a Map-Request 192.0.2.1:50000 -> 192.0.2.2:4342
    for name in ("sll-vlan", "sll2-qinq", "ethernet-qinq", "null-big-endian"):
        linktype, build = LAYOUTS[name]
        path = tmp_path / f"{name}.pcap"
        write_pcap(str(path), [build(ip), b"\x00" * 24], linktype)
        assert list(iter_ip_packets(str(path))) == [("192.0.2.1", "192.0.2.2", 17, 50000, 4342),
                                                    ("0.0.0.0", "0.0.0.0", -1, 0, 0)], name
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"junk")
    with pytest.raises(NetCaptureError):
        list(iter_ip_packets(str(junk)))
