"""Namespace tests of signal-free LISP multicast (RFC 8378, mode lispmc) through real xTRs and Map-Server."""

from __future__ import annotations

import json
import os
import sys
import time

import pandas as pd
import pytest

from conftest import corecast, leftovers
from nethelpers import lisp_testbed, status, wait_for

pytestmark = pytest.mark.net

S_G = "10.0.0.10,232.1.1.1"
SENDER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 5000))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 64)
out = open(sys.argv[2], "w")
t0 = time.time()
for seq in range(int(sys.argv[3])):
    time.sleep(max(0.0, t0 + seq * 0.05 - time.time()))
    out.write(f"{seq} {time.time():.6f}\\n"); out.flush()
    s.sendto(seq.to_bytes(4, "big") + bytes(996), ("232.1.1.1", 6000))
"""
RECEIVER = """
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6000))
s.setsockopt(socket.IPPROTO_IP, 39, socket.inet_aton("232.1.1.1") + socket.inet_aton(sys.argv[1])
             + socket.inet_aton(sys.argv[2]))
out = open(sys.argv[3], "w")
s.settimeout(0.2)
end = time.time() + float(sys.argv[4])
stop = sys.argv[5] if len(sys.argv) > 5 else None
while time.time() < end and not (stop and os.path.exists(stop)):
    try:
        data = s.recv(2000)
    except socket.timeout:
        continue
    out.write(f"{int.from_bytes(data[:4], 'big')} {time.time():.6f}\\n"); out.flush()
s.close()  # leave (S,G) now: the time written next is when this receiver left
out.write(f"-1 {time.time():.6f}\\n"); out.flush()
"""


def test_smoke_lispmc_every_chunk_and_bytes_equal_the_model(tmp_path):
    out = tmp_path / "smoke"
    # the default topology (4 ASes x 10 clients), one host per AS serving its 10 client EIDs
    res = corecast("run", "smoke", "--out", str(out), "--set", "modes=lispmc,unicast", "--set", "ases=4",
                   "--set", "clients=10", "--set", "chunks=100", "--set", "speed=10", "--set", "client_hosts=per-as",
                   timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    df = pd.read_csv(out / "measurements.csv").set_index("mode")
    row = df.loc["lispmc"]
    assert row.delivered_chunks == row.expected_chunks == 100 * 40 and row.corrupt_chunks == 0
    assert row.core_bytes == row.model_core_bytes == 100 * 4 * (64 + 1316)      # j (64 + P) per chunk
    assert row.interdomain_bytes == 2 * 100 * 4 * (64 + 1316)                 # uplink + one copy down each AS
    links = pd.read_csv(out / "links.csv")
    mc = links[links["mode"] == "lispmc"]
    assert (mc["bytes"] == mc["model_bytes"]).all() and mc["bytes"].sum() == row.interdomain_bytes
    assert df.loc["unicast", "core_bytes"] == 100 * 40 * (64 + 1316)
    assert leftovers() == ([], [])


def test_smoke_lispmc_on_a_tree_core_every_link_equals_the_model(tmp_path):
    """A tree core routed by FRR (2 transit routers): every chunk to every client, every link equal to the model."""
    out = tmp_path / "tree"
    res = corecast("run", "smoke", "--out", str(out), "--set", "modes=lispmc", "--set", "ases=3",
                   "--set", "clients=2", "--set", "chunks=40", "--set", "speed=10", "--set", "core=tree",
                   "--set", "transit=2", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    row = pd.read_csv(out / "measurements.csv").set_index("mode").loc["lispmc"]
    assert row.delivered_chunks == row.expected_chunks == 40 * 6 and row.corrupt_chunks == 0
    assert row.core_bytes == row.model_core_bytes == 40 * 3 * (64 + 1316)     # j (64 + P) per chunk
    links = pd.read_csv(out / "links.csv")
    mc = links[links["mode"] == "lispmc"]
    assert any(str(n).startswith("t") for n in mc["node"]), mc  # the transit-root links are measured too
    assert (mc["bytes"] == mc["model_bytes"]).all(), mc[["node", "interface", "direction", "bytes", "model_bytes"]]
    assert mc["bytes"].sum() == row.interdomain_bytes == row.model_interdomain_bytes
    assert leftovers() == ([], [])


def _rows(path) -> list[tuple[int, float]]:
    try:
        return [(int(a), float(b)) for a, b in (line.split() for line in open(path) if line.strip())]
    except (OSError, ValueError):  # not written yet, or a line being written
        return []


def test_join_mid_stream_leave_and_stats_ms(tmp_path):
    rundir = str(tmp_path / "run")
    os.makedirs(rundir)
    for name, code in (("send.py", SENDER), ("recv.py", RECEIVER)):
        (tmp_path / name).write_text(code)
    # Load: receiver 1 runs until told to stop (not a fixed 14 s from its own start, which a slow start-up
    # ate into), receiver 2 starts once receiver 1 has 2 s of the stream (not after a fixed sleep), and
    # the stream is long enough (15 s) for receiver 2's 6 s to end well inside it.
    chunks = 300
    with lisp_testbed(rundir, ases=2, clients=1) as (tb, plan):
        (h1, e1), (h2, e2) = [(h, e) for _a, h, e in plan.clients()]
        py = sys.executable
        stop1 = str(tmp_path / "stop-r1")
        r1 = tb.node(h1).popen([py, str(tmp_path / "recv.py"), e1, plan.source_eid, str(tmp_path / "r1"), "300",
                                stop1])
        assert wait_for(lambda: S_G in status(rundir, "ms").get("multicast", {}), 60)
        src = tb.node(plan.source_host).popen([py, str(tmp_path / "send.py"), plan.source_eid,
                                               str(tmp_path / "sent"), str(chunks)])  # 15 s at 20 chunks/s
        assert wait_for(lambda: len(_rows(tmp_path / "r1")) >= 40, 60, 0.05), "receiver 1 got no stream"
        r2 = tb.node(h2).popen([py, str(tmp_path / "recv.py"), e2, plan.source_eid, str(tmp_path / "r2"), "6"])
        assert wait_for(lambda: status(rundir, "ms").get("multicast", {}).get(S_G, {}).get("size") == 2, 30)
        landed = time.time()          # the second ETR's registration is in the Map-Server (status: 1 s grain)
        stats = corecast("stats", "ms", "--run", rundir, check=True).stdout
        assert json.loads(stats)["multicast"][S_G] == {"rlocs": sorted([plan.client_ases[0].rloc,
                                                                        plan.client_ases[1].rloc]),
                                                       "size": 2, "sites": ["as1", "as2"]}
        r2.wait(timeout=60)           # receiver 2 leaves after 6 s: its ETR deregisters (S,G)
        assert wait_for(lambda: status(rundir, "ms").get("multicast", {}).get(S_G, {}).get("size") == 1, 30)
        src.wait(timeout=60)
        wait_for(lambda: any(s == chunks - 1 for s, _ in _rows(tmp_path / "r1")), 30)  # the last chunk, or give up
        with open(stop1, "w"):
            pass
        r1.wait(timeout=60)
        x2 = status(rundir, "x2")["lispmc"]
        x0 = status(rundir, "x0")["lispmc"]
    sent = dict(_rows(tmp_path / "sent"))
    assert len(sent) == chunks
    got1 = [s for s, _ in _rows(tmp_path / "r1") if s >= 0]
    got2 = [(s, t) for s, t in _rows(tmp_path / "r2") if s >= 0]
    left = next(t for s, t in _rows(tmp_path / "r2") if s < 0)  # receiver 2's own clock when it left
    assert got1 == sorted(sent)                                                 # receiver 1: every chunk, in order
    seqs2 = [s for s, _ in got2]
    assert seqs2 and seqs2 == list(range(seqs2[0], seqs2[-1] + 1))              # no gap after the first
    assert seqs2[-1] < chunks - 20                                              # it left 1 s or more before the end
    # from the next chunk on after the registration landed: the ITR's 0.5 s re-resolution and the status
    # file's 1 s grain make it ~0.8 s; 3 s on a loaded machine (a map-cache TTL of 1 min would miss it)
    assert sent[seqs2[0]] <= landed + 3.0
    assert left - sent[seqs2[-1]] < 1.5                                          # it received until it left
    assert x2["etr"]["join"] == 1 and x2["etr"]["leave"] == 1
    # copies still in flight after the leave: ~0.8 s of them (16) idle, up to 2.5 s of them (50) on a loaded
    # machine; an ITR that kept sending to x2 until the end would send 100 or more
    assert x2["etr"]["no-receivers"] <= 2.5 / 0.05 + 2
    assert x0["itr"]["list-changed"] >= 3 and x0["replication_lists"] == {S_G: 1}
    assert leftovers() == ([], [])
