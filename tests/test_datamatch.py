"""A mode's own data (not LISP) is counted alike by the links' nft counters, their captures and count_capture.

Issue 12 gap: with ``--keep-pcap`` an ``ipmc`` run reported every link's counters as
differing from its capture, because the captures' filter and count only knew LISP
(UDP 4341/4342). :class:`testbed.datamatch.DataMatch` renders one description as the
nft rule, the tcpdump filter and the Python count; these tests hold the three together
(tcpdump's own filter on a hand-made capture), for every registered mode.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
from types import SimpleNamespace

import pytest

from testbed.datamatch import DataMatch, capture_filter
from testbed.decode import LINKTYPE_ETHERNET, count_capture, write_pcap
from testbed.modes import MODES, IpmcMode, Mode
from testbed.modemodels import MODELS
from testbed.net.links import InterdomainLink, LinkCaptures, LinkCounters, ruleset
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispdata import encode_lisp_header

A = socket.inet_aton
GROUP = "232.2.2.2"
PAYLOAD = b"m" * 1316


def _udp(dst: str, dport: int, payload: bytes = PAYLOAD, sport: int = 5000, src: str = "10.0.0.10") -> bytes:
    return build_ipv4_udp(A(src), A(dst), sport, dport, payload)


def _fragment(ip: bytes, offset_units: int) -> bytes:
    """``ip`` with its fragment offset set (a non-first fragment keeps no UDP header in reality)."""
    return ip[:6] + struct.pack("!H", offset_units) + ip[8:]


def _tcp_like(ip: bytes) -> bytes:
    return ip[:9] + b"\x06" + ip[10:]


def _packets() -> list[tuple[bool, bytes]]:
    """(the ipmc match selects it, IPv4 packet)."""
    lisp = build_ipv4_udp(A("172.16.0.2"), A("172.16.1.2"), 50000, 4341,
                          encode_lisp_header(0x80, 1) + _udp("10.1.0.10", 6000))
    return [
        (True, _udp(GROUP, 6000)),                        # ipmc's chunk: 28 + P
        (True, _udp(GROUP, 6000, b"x" * 10, sport=4000)),
        (False, _udp(GROUP, 6001)),                       # another port
        (False, _udp("232.2.2.3", 6000)),                 # another group
        (False, _udp("10.1.0.10", 6000)),                 # unicast to a client
        (False, _tcp_like(_udp(GROUP, 6000))),            # not UDP
        (False, _fragment(_udp(GROUP, 6000), 100)),       # a non-first fragment
        (False, lisp),                                    # LISP data: counted as LISP, not as the match
    ]


def test_one_description_three_renderings():
    m = IpmcMode.link_data
    assert m == DataMatch(GROUP, 6000)
    assert m.nft() == IpmcMode.link_data_match == "ip daddr 232.2.2.2 udp dport 6000"
    assert m.bpf() == "(udp and dst net 232.2.2.2/32 and dst port 6000)"
    assert DataMatch("232.0.0.0/8", 6000).nft() == "ip daddr 232.0.0.0/8 udp dport 6000"
    assert capture_filter([m]) == "udp port 4341 or udp port 4342 or " + m.bpf()
    assert capture_filter() == "udp port 4341 or udp port 4342"
    for ok, ip in _packets():
        assert m.matches(ip, 0) is ok, ip[:28].hex()
    assert DataMatch("232.0.0.0/8", 6000).matches(_udp("232.9.9.9", 6000), 0)
    with pytest.raises(ValueError, match="port"):
        DataMatch(GROUP, 0)
    with pytest.raises(ValueError, match="bad destination"):
        DataMatch("232.2.2.2/8", 6000)


def test_count_capture_counts_the_match_as_data(tmp_path):
    path = tmp_path / "link.pcap"
    packets = _packets()
    write_pcap(str(path), [b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip for _ok, ip in packets], LINKTYPE_ETHERNET)
    plain = count_capture(str(path))
    assert plain.native_packets == 0 and plain.data_bytes == plain.lisp_data_bytes == len(packets[-1][1])
    t = count_capture(str(path), [IpmcMode.link_data])
    assert t.native_packets == 2 and t.native_bytes == (28 + 1316) + (28 + 10)
    assert t.data_packets == 3 and t.data_bytes == t.native_bytes + len(packets[-1][1])
    cut = tmp_path / "cut.pcap"  # the uplink capture keeps 128 bytes: still counted by its IP length
    write_pcap(str(cut), [b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip for _ok, ip in packets], LINKTYPE_ETHERNET,
               snaplen=128)
    c = count_capture(str(cut), [IpmcMode.link_data])
    assert (c.native_packets, c.native_bytes) == (t.native_packets, t.native_bytes)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_tcpdump_filter_selects_what_count_capture_counts(tmp_path):
    """tcpdump's own BPF compilation of the capture filter keeps exactly the LISP packets and the matched ones."""
    src, out = tmp_path / "all.pcap", tmp_path / "kept.pcap"
    packets = _packets()
    write_pcap(str(src), [b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip for _ok, ip in packets], LINKTYPE_ETHERNET)
    res = subprocess.run(["tcpdump", "-n", "-r", str(src), "-w", str(out), capture_filter([IpmcMode.link_data])],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    kept = count_capture(str(out), [IpmcMode.link_data])
    assert kept.total_packets == sum(ok for ok, _ in packets) + 1  # + the LISP packet
    assert kept.data_packets == kept.total_packets


class _Node:
    name = "x0"


def test_link_captures_and_counters_follow_every_started_mode():
    """Every mode: its data (if not LISP) is in the captures' filter and count and in the counters' rules."""
    link = InterdomainLink("x0-core", "x0", "x0-eth1", "core")
    for name, cls in MODES.items():
        tb = SimpleNamespace(node=lambda _n: _Node())
        mode = cls(SimpleNamespace(tb=tb, link_counters=None))
        mode.claim_link_data()
        caps = LinkCaptures(tb, [link], "/tmp", "t")
        counters = LinkCounters(tb, [link])
        want = (cls.link_data,) if cls.link_data else ()
        assert caps.matches == want, name
        assert {c.bpf for c in caps.caps.values()} == {capture_filter(want)}, name
        assert counters.data_matches == [m.nft() for m in want], name
        rules = ruleset(["x0-eth1"], counters.data_matches)
        for m in want:
            assert f'oifname "x0-eth1" {m.nft()} counter name "l0_up_data"' in rules


def test_a_mode_cannot_count_what_captures_miss():
    """A bare nft string (the old link_data_match) is refused: captures would not see that data."""
    with pytest.raises(TypeError, match="link_data"):
        class Bad(Mode):  # noqa: F841
            name = "bad"
            model = MODELS["unicast"]
            link_data_match = "ip daddr 232.9.9.9 udp dport 1"

    class Good(Mode):
        name = "good"
        model = MODELS["unicast"]
        link_data = DataMatch("232.9.9.9", 1)

    assert Good.link_data_match == "ip daddr 232.9.9.9 udp dport 1"
