"""count_capture and decode_command on small hand-made captures."""

from __future__ import annotations

import socket
import struct
import subprocess

import pytest

from testbed.decode import (KINDS, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW,
                            CaptureError, count_capture, decode_command, write_pcap)
from testbed.wire import corecast as cc
from testbed.wire import lispctrl as lc
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispdata import encode_lisp_header

A = socket.inet_aton
CHUNK = b"c" * 1200


def _ip_packets() -> list[tuple[str, bytes]]:
    inner = build_ipv4_udp(A("10.0.0.1"), A("10.1.0.5"), 5000, 6000, CHUNK)
    ref = cc.encode_ref(3, 9, cc.chunk_hash(CHUNK), A("10.0.0.1"), A("10.1.0.5"), 5000, 6000)
    data = cc.encode_data(3, 9, CHUNK)
    req = lc.MapRequest(1, ["10.1.0.5/32"], ["192.0.2.1"]).encode()
    outer = lambda dport, payload, sport=50000: build_ipv4_udp(  # noqa: E731
        A("192.0.2.1"), A("192.0.2.2"), sport, dport, payload)
    return [
        ("lisp-unicast", outer(4341, encode_lisp_header(0x80, 1) + inner)),
        ("corecast-data", outer(4341, encode_lisp_header(0x84, 1) + data)),
        ("corecast-ref", outer(4341, encode_lisp_header(0x84, 1) + ref)),
        ("corecast-ref", outer(4341, encode_lisp_header(0x84, 1) + ref)),
        ("lisp-control", outer(4342, req)),
        ("lisp-control", outer(61000, lc.MapReply(1, []).encode(), sport=4342)),
        ("corecast-service", outer(4340, ref)),
        ("corecast-service", outer(4340, data)),
        ("other", inner),
        ("malformed", outer(4341, encode_lisp_header(0x84, 1) + b"\x99" * 20)),  # C bit, bad CoreCast version
        ("malformed", outer(4341, encode_lisp_header(0x84, 1) + ref + b"x")),  # REF of 33 bytes
        ("malformed", outer(4342, b"\x10\x00")),  # truncated Map-Request
        ("malformed", outer(4340, b"\x35" + bytes(11))),  # CoreCast version 3
        ("malformed", outer(4341, b"")[:20] + b"\x00"),  # IP says UDP, header cut
    ]


def _frame(linktype: int, ip: bytes) -> bytes:
    if linktype == LINKTYPE_ETHERNET:
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
    if linktype == LINKTYPE_LINUX_SLL:
        return struct.pack("!HHH8sH", 4, 1, 6, b"\x02" * 6 + b"\0\0", 0x0800) + ip
    if linktype == LINKTYPE_LINUX_SLL2:
        return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 4, 6, b"\x02" * 6 + b"\0\0") + ip
    return ip


def _expected(packets) -> tuple[dict[str, int], dict[str, int]]:
    count, size = dict.fromkeys(KINDS, 0), dict.fromkeys(KINDS, 0)
    for kind, ip in packets:
        count[kind] += 1
        size[kind] += int.from_bytes(ip[2:4], "big")
    return count, size


@pytest.mark.parametrize("linktype", [LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW])
def test_count_capture_per_linktype(tmp_path, linktype):
    packets = _ip_packets()
    path = tmp_path / "c.pcap"
    write_pcap(str(path), (_frame(linktype, ip) for _, ip in packets), linktype)
    totals = count_capture(str(path))
    count, size = _expected(packets)
    assert totals.packets == count and totals.bytes == size
    assert totals.lisp_data_bytes == size["lisp-unicast"] + size["corecast-data"] + size["corecast-ref"]
    assert totals.bytes["corecast-ref"] == 2 * 68
    assert totals.bytes["lisp-unicast"] == 64 + 1200 and totals.bytes["corecast-data"] == 48 + 1200
    assert totals.control_bytes == size["lisp-control"] and totals.total_packets == len(packets)


def test_non_ip_frames_are_other(tmp_path):
    arp = b"\xff" * 6 + b"\x02" * 6 + b"\x08\x06" + bytes(28)
    vlan = b"\x02" * 12 + b"\x81\x00\x00\x05\x08\x00" + _ip_packets()[2][1]
    path = tmp_path / "v.pcap"
    write_pcap(str(path), [arp, vlan, b"\x02"])
    totals = count_capture(str(path))
    assert totals.packets["other"] == 2 and totals.packets["corecast-ref"] == 1


def test_pcapng_is_read(tmp_path):
    tshark = "/usr/bin/tshark"
    path, ng = tmp_path / "c.pcap", tmp_path / "c.pcapng"
    write_pcap(str(path), (_frame(LINKTYPE_ETHERNET, ip) for _, ip in _ip_packets()))
    try:
        subprocess.run(["/usr/bin/editcap", "-F", "pcapng", str(path), str(ng)], check=True, capture_output=True)
    except FileNotFoundError:
        pytest.skip(f"editcap (with {tshark}) not installed")
    assert count_capture(str(ng)).packets == count_capture(str(path)).packets


def test_unreadable_files(tmp_path, capsys):
    with pytest.raises(CaptureError):
        count_capture(str(tmp_path / "missing.pcap"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    assert decode_command(str(junk)) == 2
    assert decode_command(str(tmp_path / "missing.pcap")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("corecast decode: ") for line in err)


def test_decode_command_lines_and_totals(tmp_path, capsys):
    packets = _ip_packets()
    path = tmp_path / "c.pcap"
    write_pcap(str(path), (_frame(LINKTYPE_ETHERNET, ip) for _, ip in packets), start=100.0, step=0.5)
    assert decode_command(str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(packets) + 1 + len(KINDS) + 1
    assert lines[0].split()[0] == "0.000000" and lines[1].split()[0] == "0.500000"
    assert "192.0.2.1 > 192.0.2.2" in lines[0] and "lisp-unicast" in lines[0] and "dst=10.1.0.5" in lines[0]
    assert "corecast-ref" in lines[2] and "stream=3 seq=9" in lines[2] and "dst=10.1.0.5:6000" in lines[2]
    assert "map-request" in lines[4] and "dst=10.1.0.5/32" in lines[4]
    assert "corecast-service-ref" in lines[6] and "corecast-service-data" in lines[7]
    totals = {line.split()[0]: line.split()[1:] for line in lines[len(packets):]}
    assert totals["corecast-ref"] == ["2", "136"] and totals["malformed"] == ["5", totals["malformed"][1]]
    assert totals["total"][0] == str(len(packets))


def test_decode_command_limit_totals_only_detail(tmp_path, capsys):
    path = tmp_path / "c.pcap"
    write_pcap(str(path), (_frame(LINKTYPE_ETHERNET, ip) for _, ip in _ip_packets()))
    assert decode_command(str(path), limit=3) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 + 1 + len(KINDS) + 1
    assert decode_command(str(path), totals_only=True) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["type", "packets", "ip_bytes"] and len(out) == len(KINDS) + 2
    assert decode_command(str(path), detail=True, limit=3) == 0
    out = capsys.readouterr().out
    assert "###[ LISP data ]###" in out and "###[ CoreCast REF ]###" in out and "chunk_hash" in out
