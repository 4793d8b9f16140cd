"""The CoreCast Wireshark dissector (scripts/wireshark/corecast.lua) against our own codecs and decoder.

tshark loads the plugin with ``-X lua_script:`` (no install needed). A capture
built with the fast codecs (CoreCast DATA and REFs behind the LISP C bit,
unicast LISP data, the S-to-ITR service traffic on UDP 4340) must dissect with
the same per-type counts as ``corecast decode`` (:func:`testbed.decode.count_capture`),
the REF fields the source wrote, and no malformed packet or expert error.
tshark is required in CI (a missing tshark fails there instead of skipping).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from testbed.decode import count_capture, write_pcap
from testbed.wire import corecast as cc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispdata import encode_lisp_header

PLUGIN = Path(__file__).resolve().parent.parent / "scripts" / "wireshark" / "corecast.lua"
A = socket.inet_aton
SRC, ITR_SVC, ITR, ETRS = "10.0.0.10", "10.0.255.254", "192.0.2.1", ["198.51.100.1", "198.51.100.2"]
CLIENTS = {"198.51.100.1": ["10.1.0.5", "10.1.0.6", "10.1.0.7"], "198.51.100.2": ["10.2.0.5"]}
SPORT, DPORT = 5004, 6000
KNOWN_REF = dict(stream=7, seq=2, src="10.0.0.10", dst="10.1.0.6", sport=SPORT, dport=DPORT)


def _tshark() -> str:
    path = shutil.which("tshark") or ("/usr/bin/tshark" if os.access("/usr/bin/tshark", os.X_OK) else None)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is required in CI (apt-get install tshark)")
        pytest.skip("tshark not installed")
    return path


def _eth(ip: bytes) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0800) + ip


def _chunk(seq: int) -> bytes:
    return bytes((seq * 7 + i) & 0xFF for i in range(1316))


def demo_frames(chunks: int = 4) -> list[bytes]:
    """What a CoreCast and a unicast stream put on the wire: S -> ITR service traffic, ITR -> ETR core traffic."""
    frames = []
    nonce = 1
    for seq in range(chunks):
        chunk = _chunk(seq)
        digest = cc.chunk_hash(chunk)
        frames.append(_eth(build_ipv4_udp(A(SRC), A(ITR_SVC), SPORT, 4340, cc.encode_data(7, seq, chunk))))
        for etr, clients in CLIENTS.items():
            for client in clients:
                ref = cc.encode_ref(7, seq, digest, A(SRC), A(client), SPORT, DPORT)
                frames.append(_eth(build_ipv4_udp(A(SRC), A(ITR_SVC), SPORT, 4340, ref)))
        for etr, clients in CLIENTS.items():
            lisp = encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, nonce)
            frames.append(_eth(build_ipv4_udp(A(ITR), A(etr), 61000, 4341, lisp + cc.encode_data(7, seq, chunk))))
            for client in clients:
                ref = cc.encode_ref(7, seq, digest, A(SRC), A(client), SPORT, DPORT)
                lisp = encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, nonce)
                frames.append(_eth(build_ipv4_udp(A(ITR), A(etr), 61000, 4341, lisp + ref)))
                inner = build_ipv4_udp(A(SRC), A(client), SPORT, DPORT, chunk)  # the unicast mode's copy
                frames.append(_eth(build_ipv4_udp(A(ITR), A(etr), 61001, 4341,
                                                  encode_lisp_header(LISP_FLAG_N, nonce) + inner)))
            nonce += 1
    return frames


def _installed_copies(tshark: str) -> list[Path]:
    """The plugin as installed in tshark's Lua plugin folders (scripts/setup.sh puts it there)."""
    out = subprocess.run([tshark, "-G", "folders"], capture_output=True, text=True, timeout=60).stdout
    dirs = [line.split(":", 1)[1].strip() for line in out.splitlines() if "Lua Plugins:" in line]
    return [Path(d) / "corecast.lua" for d in dirs if (Path(d) / "corecast.lua").is_file()]


def _run(tshark: str, pcap: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    # An installed copy is loaded first and wins (the -X copy then steps aside): it must be this one.
    for copy in _installed_copies(tshark):
        if copy.read_bytes() != PLUGIN.read_bytes():
            pytest.fail(f"{copy} differs from {PLUGIN}: run scripts/setup.sh to install the current dissector")
    cmd = [tshark, "-X", f"lua_script:{PLUGIN}", "-r", str(pcap), *extra, "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=f"]
    for name in fields:
        cmd += ["-e", name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Lua: Error" not in out.stderr and "error" not in out.stderr.replace("root", "").lower(), out.stderr
    return [line.split("|") for line in out.stdout.splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[list[str]]]:
    tshark = _tshark()
    pcap = Path(tmp_path_factory.mktemp("cc")) / "demo.pcap"
    write_pcap(str(pcap), demo_frames())
    rows = _run(tshark, pcap, "frame.protocols", "udp.dstport", "lisp-data.flags.res", "corecast.type",
                "corecast.lisp_c", "_ws.expert.severity", "_ws.malformed")
    return pcap, rows


def _kind(row: list[str]) -> str:
    protocols, dport, _res, ctype, behind, _sev, _mal = row
    if dport == "4340":
        return {"1": "corecast-service", "2": "corecast-service"}.get(ctype, "malformed")
    if dport == "4341":
        if behind != "1":
            return "lisp-unicast" if protocols.endswith("lisp-data:ip:udp:data") else "malformed"
        return {"1": "corecast-data", "2": "corecast-ref"}.get(ctype, "malformed")
    return "other"


def test_counts_match_corecast_decode(demo):
    pcap, rows = demo
    seen = Counter(_kind(row) for row in rows)
    totals = count_capture(str(pcap))
    expected = {kind: n for kind, n in totals.packets.items() if n}
    assert dict(seen) == expected
    assert expected == {"corecast-service": 4 * 5, "corecast-data": 4 * 2, "corecast-ref": 4 * 4, "lisp-unicast": 4 * 4}


def test_no_malformed_or_expert(demo):
    _pcap, rows = demo
    for row in rows:
        assert row[5] == "" and row[6] == "", row


def test_ordinary_lisp_stays_with_builtin_dissector(demo):
    _pcap, rows = demo
    unicast = [r for r in rows if r[1] == "4341" and r[4] != "1"]
    assert unicast and all(r[0].endswith("udp:lisp-data:ip:udp:data") and r[3] == "" for r in unicast)


def test_known_ref_fields(demo):
    pcap, _rows = demo
    k = KNOWN_REF
    flt = (f"corecast.lisp_c && corecast.type == 2 && corecast.seq == {k['seq']} && "
           f"corecast.dst_eid == {k['dst']}")
    rows = _run(_tshark(), pcap, "corecast.stream", "corecast.seq", "corecast.hash", "corecast.src_eid",
                "corecast.dst_eid", "corecast.sport", "corecast.dport", "ip.dst", "_ws.col.Info", extra=("-Y", flt))
    assert len(rows) == 1
    stream, seq, digest, src, dst, sport, dport, outer, info = rows[0]
    assert (int(stream), int(seq)) == (k["stream"], k["seq"])
    assert digest.replace(":", "") == cc.chunk_hash(_chunk(k["seq"])).hex()
    assert (src, dst, int(sport), int(dport)) == (k["src"], k["dst"], k["sport"], k["dport"])
    assert outer == "198.51.100.1"
    assert info.startswith("CoreCast REF stream=7 seq=2 10.0.0.10:5004 > 10.1.0.6:6000")


def test_data_chunk_len_and_service_traffic(demo):
    pcap, _rows = demo
    rows = _run(_tshark(), pcap, "udp.dstport", "corecast.chunk_len", "corecast.stream", "corecast.seq",
                extra=("-Y", "corecast.type == 1"))
    assert len(rows) == 4 + 4 * 2  # one DATA per chunk to the ITR, one per ETR on the core
    assert {r[1] for r in rows} == {"1316"}
    assert sorted(int(r[3]) for r in rows if r[0] == "4340") == [0, 1, 2, 3]


def test_unknown_type_and_malformed_are_graceful(tmp_path):
    tshark = _tshark()
    later = bytes([0x1F, 0, 0, 0]) + struct.pack("!II", 9, 77) + b"future body"
    bad_ref = cc.encode_ref(1, 1, b"\x00" * 8, A(SRC), A("10.1.0.5"), 1, 2)[:30]
    short = b"\x12\x00"
    lisp = encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, 5)
    frames = [_eth(build_ipv4_udp(A(ITR), A(ETRS[0]), 61000, 4341, lisp + later)),
              _eth(build_ipv4_udp(A(SRC), A(ITR_SVC), SPORT, 4340, later)),
              _eth(build_ipv4_udp(A(ITR), A(ETRS[0]), 61000, 4341, lisp + bad_ref)),
              _eth(build_ipv4_udp(A(SRC), A(ITR_SVC), SPORT, 4340, short)),
              _eth(build_ipv4_udp(A(ITR), A(ETRS[0]), 61000, 4341, lisp))]
    pcap = tmp_path / "odd.pcap"
    write_pcap(str(pcap), frames)
    rows = _run(tshark, pcap, "corecast.type", "corecast.stream", "corecast.seq", "corecast.body",
                "_ws.expert.message", "_ws.expert.severity", "_ws.col.Info")
    assert len(rows) == 5
    ctype, stream, seq, body, message, severity, info = rows[0]
    assert (ctype, stream, seq) == ("15", "9", "77")
    assert bytes.fromhex(body.replace(":", "")) == b"future body"
    assert "CoreCast type 15" in message and info.startswith("CoreCast type 15 stream=9 seq=77")
    assert rows[1][0] == "15" and "CoreCast type 15" in rows[1][4]
    assert "REF of 30 bytes" in rows[2][4] and "bad length" in rows[2][6]
    assert "header needs 12" in rows[3][4] and "truncated" in rows[3][6]
    assert rows[4][6] == "CoreCast [truncated]"  # (lisp-data itself flags a header with no payload)
    # corecast decode agrees that these are not DATA or REF.
    assert count_capture(str(pcap)).packets["malformed"] == 5


def test_plugin_loaded_twice_is_harmless(tmp_path):
    pcap = tmp_path / "one.pcap"
    write_pcap(str(pcap), demo_frames(1)[:2])
    cmd = [_tshark(), "-X", f"lua_script:{PLUGIN}", "-X", f"lua_script:{PLUGIN}", "-r", str(pcap),
           "-T", "json", "--no-duplicate-keys"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Lua: Error" not in out.stderr, out.stderr
    layers = [p["_source"]["layers"] for p in json.loads(out.stdout)]
    assert [isinstance(l.get("corecast"), dict) for l in layers] == [True, True]


def test_corecast_decode_tshark(demo, tmp_path):
    import sys
    pcap, _rows = demo
    _tshark()
    cmd = [sys.executable, "-m", "testbed", "decode", str(pcap), "--tshark", "-Y", "corecast.type == 2 && corecast.lisp_c"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 16 and all("CoreCast REF stream=7" in line for line in lines)
    bad = subprocess.run([sys.executable, "-m", "testbed", "decode", str(tmp_path / "none.pcap"), "--tshark"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no such file" in bad.stderr


def test_cut_capture_dissects_without_errors(tmp_path):
    """A capture cut at 64 bytes (--snaplen 64): every CoreCast packet still typed, lengths from the wire."""
    tshark = _tshark()
    editcap = shutil.which("editcap")
    assert editcap, "editcap comes with tshark"
    whole, cut = tmp_path / "whole.pcap", tmp_path / "cut.pcapng"
    write_pcap(str(whole), demo_frames(2))
    subprocess.run([editcap, "-s", "64", str(whole), str(cut)], check=True, timeout=60)
    rows = _run(tshark, cut, "frame.cap_len", "udp.dstport", "corecast.type", "corecast.chunk_len",
                "corecast.lisp_c", "_ws.expert.message", "_ws.col.Info")
    assert {r[0] for r in rows} == {"64"}
    types = Counter((r[1], r[2], r[4]) for r in rows if r[2])
    assert types == {("4340", "1", ""): 2, ("4340", "2", ""): 8, ("4341", "1", "1"): 4, ("4341", "2", "1"): 8}
    assert {r[3] for r in rows if r[2] == "1"} == {"1316"}  # the chunk's length on the wire, not the cut's
    assert all("Lua" not in r[5] and "bad length" not in r[6] for r in rows), rows
    assert all(r[6].endswith("[cut by the snap length]") for r in rows if r[2] == "2")
