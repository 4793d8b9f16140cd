"""tshark as an outside judge: every LISP message we emit dissects cleanly and with our field values.

tshark is a required dependency: with CI=true a missing tshark fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from testbed.wire import corecast as cc
from testbed.wire import lispctrl as lc
from testbed.wire.constants import LISP_FLAG_C, LISP_FLAG_N
from testbed.wire.ipv4 import build_ipv4_udp
from testbed.wire.lispdata import encode_lisp_header

TSHARK = "/usr/bin/tshark"
A = socket.inet_aton
ITR, ETR, MS = "192.0.2.1", "198.51.100.1", "203.0.113.100"
KEY = b"site-key"


def _tshark() -> str:
    path = TSHARK if os.access(TSHARK, os.X_OK) else shutil.which("tshark")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tshark is required in CI (apt-get install tshark)")
        pytest.skip("tshark not installed")
    return path


def _udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", 0x0800)
    return eth + build_ipv4_udp(A(src), A(dst), sport, dport, payload)


def _messages() -> list[tuple[str, object, bytes]]:
    """(kind, message object or None, frame bytes) for every LISP message type we emit."""
    inner = build_ipv4_udp(A("10.0.0.1"), A("10.1.0.5"), 5000, 6000, b"x" * 100)
    data = cc.encode_data(7, 41, b"y" * 200)
    ref = cc.encode_ref(7, 41, cc.chunk_hash(b"y" * 200), A("10.0.0.1"), A("10.1.0.5"), 5000, 6000)
    cap = lc.Locator(ETR, corecast=True)
    request = lc.MapRequest(0x1122334455667788, ["10.1.0.5/32"], [ITR], source_eid="10.0.0.1", smr=True)
    ecm_req = lc.MapRequest(0x0102030405060708, ["10.2.0.0/16"], [ITR])
    positive = lc.MapReply(0xCAFE, [lc.EidRecord("10.1.0.0/16", ttl=1440,
                                                 locators=[cap, lc.Locator("198.51.100.2", priority=2, weight=50)])])
    negative = lc.MapReply(0xBEEF, [lc.EidRecord("10.9.0.0/16", ttl=15, action=lc.ACTION_NATIVE_FORWARD,
                                                 authoritative=False)])
    records = [lc.EidRecord("10.1.0.0/16", ttl=3, locators=[cap])]
    reg256 = lc.MapRegister(0x5151, records, alg_id=lc.ALG_SHA256_128, proxy_reply=True)
    reg1 = lc.MapRegister(0x5152, records, alg_id=lc.ALG_SHA1_96, want_map_notify=False)
    notify = lc.MapNotify(0x5151, records, alg_id=lc.ALG_SHA256_128)
    ecm = lc.Ecm(ITR, MS, 61000, 4342, ecm_req.encode())
    notify_i = lc.MapNotify(0x5153, records, alg_id=lc.ALG_SHA256_128, xtr_id=0xAACD21D1050F82BC, site_id=7)
    reg_i = lc.MapRegister(0x5153, records, use_ttl=True, xtr_id=0xAACD21D1050F82BC, site_id=7)
    probe = lc.MapRequest(0xE24A3E1157FAB443, ["/0"], [ITR], source_eid="10.0.0.1", probe=True)
    probe_reply = lc.MapReply(0xE24A3E1157FAB443, [lc.EidRecord("10.1.0.0/16", locators=[
        lc.Locator(ETR, local=True, probed=True, corecast=True)])], probe=True)
    ctl = lambda src, dst, msg, raw: _udp(src, dst, 4342, 4342, raw)  # noqa: E731
    return [
        ("data", LISP_FLAG_N, _udp(ITR, ETR, 50000, 4341, encode_lisp_header(LISP_FLAG_N, 0xABCDEF) + inner)),
        ("data", LISP_FLAG_N | LISP_FLAG_C,
         _udp(ITR, ETR, 50000, 4341, encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, 0x000102) + data)),
        ("data", LISP_FLAG_N | LISP_FLAG_C,
         _udp(ITR, ETR, 50000, 4341, encode_lisp_header(LISP_FLAG_N | LISP_FLAG_C, 0x000103) + ref)),
        ("request", request, ctl(ITR, ETR, request, request.encode())),
        ("ecm", ecm_req, ctl(ITR, MS, ecm, ecm.encode())),
        ("reply", positive, ctl(ETR, ITR, positive, positive.encode())),
        ("reply", negative, ctl(MS, ITR, negative, negative.encode())),
        ("register", reg256, ctl(ETR, MS, reg256, reg256.encode(KEY))),
        ("register", reg1, ctl(ETR, MS, reg1, reg1.encode(KEY))),
        ("notify", notify, ctl(MS, ETR, notify, notify.encode(KEY))),
        ("register-i", reg_i, ctl(ETR, MS, reg_i, reg_i.encode(KEY))),
        ("notify-i", notify_i, ctl(MS, ETR, notify_i, notify_i.encode(KEY))),
        ("probe", probe, ctl(ITR, ETR, probe, probe.encode())),
        ("probe-reply", probe_reply, ctl(ETR, ITR, probe_reply, probe_reply.encode())),
    ]


def _flatten(obj, out: dict[str, list[str]]) -> dict[str, list[str]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, dict):
                out.setdefault(key, [])
                _flatten(value, out)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, (dict, list)):
                        _flatten(item, out)
                    else:
                        out.setdefault(key, []).append(item)
            else:
                out.setdefault(key, []).append(value)
    elif isinstance(obj, list):
        for item in obj:
            _flatten(item, out)
    return out


@pytest.fixture(scope="module")
def dissected(tmp_path_factory) -> list[tuple[str, object, dict[str, list[str]]]]:
    tshark = _tshark()
    msgs = _messages()
    path = Path(tmp_path_factory.mktemp("tshark")) / "lisp.pcap"
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, Ethernet
        for i, (_, _, frame) in enumerate(msgs):
            out.write(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame)
    out = subprocess.run([tshark, "-r", str(path), "-T", "json", "--no-duplicate-keys"],
                         capture_output=True, text=True, timeout=120, check=True)
    packets = json.loads(out.stdout)
    assert len(packets) == len(msgs)
    return [(kind, obj, _flatten(pkt["_source"]["layers"], {})) for (kind, obj, _), pkt in zip(msgs, packets)]


def _nonce(value: int) -> str:
    return f"0x{value:016x}"


def test_every_packet_is_lisp_without_errors(dissected):
    for kind, _, fields in dissected:
        protocols = fields["frame.protocols"][0].split(":")
        assert ("lisp-data" if kind == "data" else "lisp") in protocols, (kind, protocols)
        assert "_ws.malformed" not in fields and "_ws.expert" not in fields, (kind, fields.get("_ws.expert.message"))
        # (_ws.lua.fake: the marker any Lua plugin leaves, e.g. the CoreCast dissector scripts/setup.sh installs)
        assert not any(k.startswith("_ws.") and k != "_ws.lua.fake" for k in fields), kind


def test_data_fields(dissected):
    data = [(obj, f) for kind, obj, f in dissected if kind == "data"]
    assert [f["lisp-data.flags"] for _, f in data] == [["0x80"], ["0x84"], ["0x84"]]
    assert [f["lisp-data.nonce"] for _, f in data] == [[str(0xABCDEF)], ["258"], ["259"]]
    assert data[0][1]["frame.protocols"][0].endswith("lisp-data:ip:udp:data")
    assert all(f["lisp-data.flags.res"] == ["0x04"] for _, f in data[1:])


def test_map_request_fields(dissected):
    (_, req, f), = [d for d in dissected if d[0] == "request"]
    assert f["lisp.type"] == ["1"] and f["lisp.nonce"] == [_nonce(req.nonce)]
    assert f["lisp.irc"] == ["0"] and f["lisp.records"] == ["1"]
    assert f["lisp.mreq.flags.smr"] == ["1"] and f["lisp.mreq.flags.auth"] == ["0"]
    assert f["lisp.mreq.srceid.ipv4"] == ["10.0.0.1"] and f["lisp.mreq.itr_rloc_ipv4"] == [ITR]
    assert f["lisp.mreq.record.prefix.ipv4"] == ["10.1.0.5"] and f["lisp.mreq.record.prefix.length"] == ["32"]


def test_ecm_fields(dissected):
    (_, req, f), = [d for d in dissected if d[0] == "ecm"]
    assert f["lisp.type"] == ["8", "1"]
    assert f["lisp.ecm.flags.sec"] == ["0"]
    assert f["frame.protocols"][0].endswith("udp:lisp:ip:udp:lisp")
    assert f["lisp.nonce"] == [_nonce(req.nonce)] and f["lisp.mreq.record.prefix.ipv4"] == ["10.2.0.0"]
    assert f["ip.dst"] == [MS, MS]


def test_map_reply_fields(dissected):
    (_, pos, f), (_, neg, g) = [d for d in dissected if d[0] == "reply"]
    assert f["lisp.type"] == ["2"] and f["lisp.nonce"] == [_nonce(pos.nonce)] and f["lisp.records"] == ["1"]
    assert f["lisp.mapping.ttl"] == ["1440"] and f["lisp.mapping.loccnt"] == ["2"]
    assert f["lisp.mapping.eid.ipv4"] == ["10.1.0.0"] and f["lisp.mapping.eid.masklen"] == ["16"]
    assert f["lisp.mapping.auth"] == ["1"] and f["lisp.mapping.act"] == ["0"]
    assert f["lisp.loc.locator"] == [ETR, "198.51.100.2"]
    assert f["lisp.loc.flags"] == ["0x8001", "0x0001"]  # CoreCast capability bit + R
    assert f["lisp.loc.priority"] == ["1", "2"] and f["lisp.loc.weight"] == ["100", "50"]
    assert g["lisp.nonce"] == [_nonce(neg.nonce)] and g["lisp.mapping.loccnt"] == ["0"]
    assert g["lisp.mapping.ttl"] == ["15"] and g["lisp.mapping.act"] == ["1"] and g["lisp.mapping.auth"] == ["0"]
    assert g["lisp.mapping.eid.ipv4"] == ["10.9.0.0"] and "lisp.loc.locator" not in g


def test_map_register_and_notify_fields(dissected):
    (_, r256, f), (_, r1, g) = [d for d in dissected if d[0] == "register"]
    (_, notify, n), = [d for d in dissected if d[0] == "notify"]
    assert f["lisp.type"] == ["3"] and f["lisp.nonce"] == [_nonce(r256.nonce)]
    assert f["lisp.keyid"] == ["0x0002"] and f["lisp.authlen"] == ["32"]  # Key ID 0 + Algorithm ID 2, 16-bit view
    assert f["lisp.mreg.flags.pmr"] == ["1"] and f["lisp.mreg.flags.wmn"] == ["1"]
    assert f["lisp.mreg.flags.xtrid"] == ["0"] and f["lisp.mreg.flags.rtr"] == ["0"]
    assert g["lisp.keyid"] == ["0x0001"] and g["lisp.authlen"] == ["20"]
    assert g["lisp.mreg.flags.pmr"] == ["0"] and g["lisp.mreg.flags.wmn"] == ["0"]
    raw = r256.encode(KEY)
    assert f["lisp.auth"] == [raw[16:48].hex(":")]
    for fields in (f, g, n):
        assert fields["lisp.records"] == ["1"] and fields["lisp.mapping.ttl"] == ["3"]
        assert fields["lisp.mapping.eid.ipv4"] == ["10.1.0.0"] and fields["lisp.loc.locator"] == [ETR]
        assert fields["lisp.loc.flags"] == ["0x8001"]
    assert n["lisp.type"] == ["4"] and n["lisp.nonce"] == [_nonce(notify.nonce)] and n["lisp.keyid"] == ["0x0002"]


def test_missing_tshark_fails_in_ci(monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        _tshark()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        _tshark()


def test_i_bit_register_and_notify_fields(dissected):
    (_, reg, f), = [d for d in dissected if d[0] == "register-i"]
    (_, note, n), = [d for d in dissected if d[0] == "notify-i"]
    assert f["lisp.mreg.flags.xtrid"] == ["1"] and f["lisp.mreg.flags.wmn"] == ["1"]
    assert n["lisp.type"] == ["4"] and n["lisp.mnot.flags.xtrid"] == ["1"] and n["lisp.mnot.flags.rtr"] == ["0"]
    for fields in (f, n):
        assert fields["lisp.xtrid"] == [(0xAACD21D1050F82BC).to_bytes(16, "big").hex(":")]
        assert fields["lisp.siteid"] == [(7).to_bytes(8, "big").hex(":")]
        assert fields["lisp.records"] == ["1"] and fields["lisp.loc.locator"] == [ETR]
    assert n["lisp.nonce"] == [_nonce(note.nonce)] and f["lisp.nonce"] == [_nonce(reg.nonce)]


def test_rloc_probe_and_probe_reply_fields(dissected):
    (_, probe, f), = [d for d in dissected if d[0] == "probe"]
    (_, reply, g), = [d for d in dissected if d[0] == "probe-reply"]
    assert f["lisp.mreq.flags.probe"] == ["1"] and f["lisp.nonce"] == [_nonce(probe.nonce)]
    assert f["lisp.mreq.record.prefix.length"] == ["0"] and f["lisp.mreq.record.prefix.afi"] == ["0"]
    assert f["lisp.mreq.itr_rloc_ipv4"] == [ITR]
    assert g["lisp.mrep.flags.probe"] == ["1"] and g["lisp.nonce"] == [_nonce(reply.nonce)]
    assert g["lisp.loc.flags.probe"] == ["1"] and g["lisp.loc.flags.local"] == ["1"]
    assert g["lisp.loc.flags"] == ["0x8007"] and g["lisp.loc.locator"] == [ETR]
