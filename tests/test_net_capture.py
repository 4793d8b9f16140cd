"""Namespace test: a kept capture is whole packets in pcapng with its comment, and it reads as clean MPEG-TS.

``corecast run smoke --keep-pcap`` (lossless, file content) keeps one pcapng per
mode of the source AS's core uplink. tshark with the CoreCast dissector sees the
TS packets inside every unicast copy and every CoreCast DATA: none is missing
(MPEG-TS continuity analysis), while a 128-byte cut of the same capture (the
old default) shows the false gaps the issue reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT, corecast, leftovers

pytestmark = pytest.mark.net
PLUGIN = os.path.join(ROOT, "scripts", "wireshark", "corecast.lua")


def _ts_fields(tshark: str, path: str) -> list[list[str]]:
    cmd = [tshark, "-X", f"lua_script:{PLUGIN}", "-r", path, "-d", "udp.port==6000,mp2t", "-T", "fields",
           "-E", "separator=|", "-E", "occurrence=f", "-e", "mp2t.pid", "-e", "mp2t.cc.drop", "-e", "_ws.malformed"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [line.split("|") for line in out.stdout.splitlines()]


def test_kept_capture_is_whole_pcapng_without_ts_gaps(tmp_path):
    tshark, editcap, capinfos = (shutil.which(t) for t in ("tshark", "editcap", "capinfos"))
    assert tshark and editcap and capinfos, "tshark/editcap/capinfos are required (Debian tshark)"
    out = tmp_path / "keep"
    res = corecast("run", "smoke", "--out", str(out), "--keep-pcap", "--set", "ases=1", "--set", "clients=2",
                   "--set", "chunks=120", "--set", "speed=4", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert leftovers() == ([], [])
    kept = sorted(p.name for p in (out / "pcap").iterdir() if "-x0-core." in p.name and "stderr" not in p.name)
    assert kept == ["smoke-corecast-x0-core.pcapng", "smoke-unicast-x0-core.pcapng"], kept
    for mode in ("unicast", "corecast"):
        path = str(out / "pcap" / f"smoke-{mode}-x0-core.pcapng")
        info = subprocess.run([capinfos, path], capture_output=True, text=True, timeout=60).stdout
        assert "pcapng" in info
        assert f"run={out} mode={mode} node=x0 interface=x0-eth" in info, info
        rows = _ts_fields(tshark, path)
        ts_frames = [r for r in rows if r[0]]  # frames with TS packets (PID field present)
        if mode == "unicast":
            assert len(ts_frames) == 2 * 120  # every copy of every chunk, as MPEG-TS
        else:
            assert len(ts_frames) == 120  # one DATA per chunk (one client AS)
        assert [r for r in rows if r[1] or r[2]] == []  # no missing TS packet, nothing malformed
        cut = str(tmp_path / f"{mode}-cut128.pcapng")
        subprocess.run([editcap, "-s", "128", path, cut], check=True, timeout=60)
        gaps = [r for r in _ts_fields(tshark, cut) if r[1]]
        if mode == "unicast":  # the old default: the first TS packet of each copy only, false gaps
            assert gaps, "a 128-byte cut should show false TS gaps"
        else:  # a cut DATA is not handed to the MPEG-TS analysis at all
            assert gaps == []


def test_live_view_in_a_log(tmp_path):
    """``--live`` off a terminal: a plain line per stream (and every 10 s), with the uplink bytes and ITR counters."""
    out = tmp_path / "live"
    res = corecast("run", "smoke", "--out", str(out), "--live", "--set", "ases=2", "--set", "clients=1",
                   "--set", "chunks=100", "--set", "speed=4", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    lines = [line for line in res.stderr.splitlines() if line.startswith("live smoke/")]
    for mode in ("unicast", "corecast"):
        last = [line for line in lines if line.startswith(f"live smoke/{mode} ")][-1]
        assert " sent 100/100 | AS1 " in last and " AS2 " in last, last
        uplink = float(last.split("| uplink ")[1].split(" MB")[0])
        assert uplink > 0.1  # at least 100 chunks of 1316 bytes crossed the uplink
        assert "itr -" not in last  # the ITR counted something
    assert "points [" not in res.stderr and "stream 100/100" not in res.stderr  # bars are off meanwhile
    assert leftovers() == ([], [])
