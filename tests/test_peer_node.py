"""The peer host (nodes/peer.py) and the source's p2p mode as real processes on loopback (no namespaces).

127.0.0.0/8 is local, so every peer binds its own 127.a.0.x "EID" as on a host with a local
route for its AS's peer block. Three "ASes" (a peer host each), 30 peers, 60 chunks at 10
chunks/s with the overlay's timers scaled for a 6 s stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = {"buffer_s": 1.0, "bm_period_s": 0.2, "sched_period_s": 0.05, "request_timeout_s": 0.5}
CHUNKS, RATE, P = 60, 10.0, 1316


def _wait(pred, timeout: float) -> bool:
    end = time.monotonic() + timeout  # a deadline: monotonic, not the wall clock
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _lead() -> float:
    """Seconds from the source's start to its first chunk: 3 s, longer on a loaded machine (the source's own
    start-up must end, and every peer must have joined the tracker, before the first push)."""
    return 3.0 * min(4.0, max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1)))


def _wait_played(tmp_path, hosts, floor_s: float, deadline_s: float = 60.0) -> None:
    """Wait until every peer has played or missed every chunk (the hosts' status files, rewritten each
    second), or, after ``floor_s`` (the last chunk's playout deadline on an idle machine), until that count
    stops rising for 2 s (peers that joined late never count the chunks before their start). Was a fixed
    sleep of ``floor_s``, which a peer host slowed by a loaded machine could still be behind."""
    from testbed.nodeutil import read_status

    def due() -> int:
        sums = [read_status(str(tmp_path / f"p{a}.status")).get("summary", {}) for a in hosts]
        return sum(s.get("played", 0) + s.get("missed", 0) for s in sums)
    t0 = time.monotonic()
    last, changed = -1, t0
    while time.monotonic() - t0 < deadline_s:
        now, count = time.monotonic(), due()
        if count >= 10 * len(hosts) * CHUNKS:
            return
        if count != last:
            last, changed = count, now
        elif now - t0 > floor_s and now - changed > 2.0:
            return
        time.sleep(0.1)


def _start(module: str, cfg: dict, path) -> subprocess.Popen:
    path.write_text(json.dumps(cfg))
    return subprocess.Popen([sys.executable, "-m", module, "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_swarm(tmp_path, upload: float, policy: str = "random", base_port: int = 24350, buffer_s: float = 1.0) -> dict:
    content = tmp_path / "content.bin"
    content.write_bytes(os.urandom(P * CHUNKS))
    params = {**FAST, "upload": upload, "policy": policy, "buffer_s": buffer_s}
    procs = []
    try:
        hosts = []
        for a in (1, 2, 3):
            cfg = {"name": f"p{a}", "asn": a, "tracker": {"addr": "127.0.0.10", "port": base_port + 1},
                   "chunk_rate": RATE, "chunk_bytes": P, "params": params, "seed": a,
                   "peers": [{"eid": f"127.{a}.0.{10 + i}", "port": base_port} for i in range(10)],
                   "ready_file": str(tmp_path / f"p{a}.ready"), "result_file": str(tmp_path / f"p{a}.json"),
                   "status_file": str(tmp_path / f"p{a}.status")}
            procs.append(_start("nodes.peer", cfg, tmp_path / f"p{a}.cfg"))
            hosts.append(a)
        assert _wait(lambda: all((tmp_path / f"p{a}.ready").exists() for a in hosts), 30)
        src_cfg = {"name": "src", "mode": "p2p", "eid": "127.0.0.10", "src_port": base_port,
                   "bitrate": int(RATE * P * 8), "chunks": CHUNKS, "content": f"file:{content}",
                   "start_at": time.time() + _lead(), "p2p": {"asn": 0, "tracker_port": base_port + 1,
                                                          "params": params},
                   "ready_file": str(tmp_path / "src.ready"), "record_file": str(tmp_path / "src.rec"),
                   "status_file": str(tmp_path / "src.status")}
        src = _start("nodes.source", src_cfg, tmp_path / "src.cfg")
        procs.append(src)
        assert src.wait(60) == 0, src.stderr.read()
        _wait_played(tmp_path, hosts, buffer_s + 1.5)
        for p in procs[:3]:
            p.send_signal(signal.SIGTERM)
        for p in procs[:3]:
            assert p.wait(30) == 0, p.stderr.read()
        peers = {}
        for a in hosts:
            peers.update(json.loads((tmp_path / f"p{a}.json").read_text())["peers"])
        status = json.loads((tmp_path / "src.status").read_text())
        return {"peers": peers, "content": content.read_bytes(), "status": status}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_swarm_on_loopback_plays_every_chunk_at_2x(tmp_path):
    from testbed.wire.corecast import chunk_hash
    out = run_swarm(tmp_path, 2.0, buffer_s=3.0)  # slack for a loaded machine (real processes, real time)
    content = out["content"]
    digests = [chunk_hash(content[i * P:(i + 1) * P]).hex() for i in range(CHUNKS)]
    assert len(out["peers"]) == 30
    for name, s in out["peers"].items():
        assert [d for _, d in s["played_digests"]] == digests, (name, {k: v for k, v in s.items() if k != "played_digests"},
                                                               s["played_digests"][:2])
        assert s["continuity"] == 1.0 and s["startup_delay_s"] > 0
    assert out["status"]["tracker"]["members"] == 30
    assert out["status"]["by_kind"]["chunk"]["datagrams"] == 4 * CHUNKS  # fanout 4


def test_swarm_on_loopback_at_0_8x_reports_continuity_below_one(tmp_path):
    out = run_swarm(tmp_path, 0.8, base_port=25350)
    played = sum(s["played"] for s in out["peers"].values())
    missed = sum(s["missed"] for s in out["peers"].values())
    # 30 peers need 30 copies per chunk interval, they upload 24 and the source 4: some chunks miss their deadline
    assert missed > 0 and played / (played + missed) < 1.0


def test_peer_config_errors_are_one_line(tmp_path):
    cfg = {"name": "p", "asn": 1, "tracker": {"addr": "127.0.0.10"}, "chunk_rate": 10.0,
           "peers": [{"eid": "127.1.0.1"}], "params": {"policy": "nearest"}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    r = subprocess.run([sys.executable, "-m", "nodes.peer", "--config", str(tmp_path / "c.json")], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "params.policy" in r.stderr
    cfg["params"] = {}
    cfg["peers"] = [{"eid": "192.0.2.1"}]  # not local: cannot bind
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    r = subprocess.run([sys.executable, "-m", "nodes.peer", "--config", str(tmp_path / "c.json")], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "cannot bind 192.0.2.1:4350" in r.stderr


@pytest.mark.parametrize("bad", [{"mode": "p2p", "p2p": {"params": {"fanout": 0}}},
                                 {"mode": "p2p", "p2p": {"asn": -1}}])
def test_source_p2p_block_checked(bad):
    from testbed.nodeutil import ConfigError
    from nodes.source import parse_config
    with pytest.raises(ConfigError, match="p2p"):
        parse_config({"name": "s", "eid": "10.0.0.10", "content": "ffmpeg", **bad})
