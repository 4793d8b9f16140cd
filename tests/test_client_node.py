"""The client node on loopback: one process serving many EIDs (IP_PKTINFO), player mode through
ffmpeg (frames equal to what the source sent), SIGTERM, bad configs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ports import free_port
from testbed.stream.content import count_frames, generate_ts_file
from testbed.stream.records import read_client_file, read_client_records, read_source_record, verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start(kind: str, cfg: dict, tmp_path) -> subprocess.Popen:
    """Write the config, start ``python -m nodes.KIND``, wait for its ready file."""
    name = cfg["name"]
    cfg.setdefault("ready_file", str(tmp_path / f"{name}.ready"))
    cfg.setdefault("status_file", str(tmp_path / f"{name}.status"))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.Popen([sys.executable, "-m", f"nodes.{kind}", "--config", str(path)], cwd=ROOT,
                            stderr=open(tmp_path / f"{name}.log", "w"))
    deadline = time.monotonic() + 60  # a Python start (numpy, scapy) on a loaded 2-core machine
    while not os.path.exists(cfg["ready_file"]):
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{name} not ready"
        time.sleep(0.02)
    return proc


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def status(tmp_path, name: str) -> dict:
    return json.loads((tmp_path / f"{name}.status").read_text())


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("content") / "one.ts"
    generate_ts_file(str(path), 1, 1_000_000)
    return str(path)


def source_cfg(tmp_path, clients, **kw):
    cfg = {"name": "src", "mode": "unicast", "eid": "127.0.0.1", "src_port": free_port(), "speed": 20,
           "clients": clients, "record_file": str(tmp_path / "src.rec"),
           "stall_timeout_s": 30.0}  # ffmpeg may lag on a loaded machine
    cfg.update(kw)
    return cfg


def test_one_process_many_eids(tmp_path, ts_file):
    port = free_port()
    eids = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    client = start("client", {"name": "cl", "port": port, "bind": "0.0.0.0", "eids": eids,
                              "record_file": str(tmp_path / "cl.rec")}, tmp_path)
    clients = [[e, port] for e in eids] + [["127.0.0.9", port]]     # 127.0.0.9 is not one of ours
    src = start("source", source_cfg(tmp_path, clients, content=f"file:{ts_file}", chunks=60), tmp_path)
    assert src.wait(30) == 0
    assert stop(client) == 0
    st = status(tmp_path, "cl")
    assert st["state"] == "stopped" and st["received"] == 4 * 60 and st["socket_drops"] == 0
    assert {e: v["received"] for e, v in st["eids"].items()} == {e: 60 for e in eids}
    assert st["other_eids"]["127.0.0.9"]["received"] == 60
    assert st["rcvbuf"] >= 4 << 20
    record = read_source_record(str(tmp_path / "src.rec"))
    receipts = read_client_records(str(tmp_path / "cl.rec"))
    report = verify(record, receipts, eids)
    assert all(report.eids[e].exact for e in eids)
    assert report.extra_eids == ["127.0.0.9"]
    assert report.delivered_chunks == report.expected_chunks == 180
    send_times = record.times
    for e in eids:                                   # kernel arrival times follow the send times
        delays = receipts[e].times - send_times
        assert (delays > 0).all() and (delays < 1.0).all()


@pytest.mark.parametrize("mode", ["udp", "pipe"])
def test_player_mode_records_every_frame(tmp_path, mode):
    port = free_port()
    out = tmp_path / "player.ts"
    client = start("client", {"name": "pl", "port": port, "bind": "127.0.0.1", "eids": ["127.0.0.1"],
                              "player": True, "player_mode": mode, "player_file": str(out),
                              "record_file": str(tmp_path / "pl.rec")}, tmp_path)
    sent = tmp_path / "sent.ts"
    src = start("source", source_cfg(tmp_path, [["127.0.0.1", port]], content="ffmpeg", duration_s=2, speed=4,
                                     sent_file=str(sent)), tmp_path)
    assert src.wait(30) == 0
    assert stop(client) == 0
    sent_frames = count_frames(str(sent))
    assert sent_frames >= 45                         # ~2 s at 25 fps
    st = status(tmp_path, "pl")
    assert st["frames"] == sent_frames == count_frames(str(out))
    if mode == "pipe":
        report = verify(read_source_record(str(tmp_path / "src.rec")), read_client_records(str(tmp_path / "pl.rec")),
                        ["127.0.0.1"])
        assert report.all_exact


def test_sigterm_without_traffic_still_writes_record_and_status(tmp_path):
    client = start("client", {"name": "idle", "port": free_port(), "bind": "127.0.0.1", "eids": ["127.0.0.1"],
                              "record_file": str(tmp_path / "idle.rec")}, tmp_path)
    assert stop(client) == 0
    meta, arr = read_client_file(str(tmp_path / "idle.rec"))
    assert meta["name"] == "idle" and len(arr) == 0
    st = status(tmp_path, "idle")
    assert st["state"] == "stopped" and st["eids"]["127.0.0.1"]["received"] == 0


@pytest.mark.parametrize("change, words", [
    ({"port": "6000"}, "port"),
    ({"eids": ["10.1.0"]}, "IPv4"),
    ({"player": True}, "player_file"),
    ({"player_mode": "rtp"}, "player_mode"),
    ({"bind": "192.0.2.1"}, "cannot bind"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, change, words):
    cfg = {"name": "bad", "port": free_port(), "bind": "127.0.0.1", "eids": ["127.0.0.1"]}
    cfg.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "nodes.client", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("client: ") and words in lines[0]
