"""The map-server process keeps its table across a restart; status shows xTR-IDs; ``lig --probe`` on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from testbed.lisp.mapcache import MapCache
from testbed.nodeutil import read_status
from testbed.lisp.xtrcontrol import XtrControl
from testbed.wire import lispctrl as lc

from test_mapserver_node import wait_for  # the same readiness wait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "persist-key"


def start(cfg: dict, tmp_path) -> tuple[subprocess.Popen, int]:
    if os.path.exists(cfg["ready_file"]):
        os.unlink(cfg["ready_file"])
    (tmp_path / "ms.json").write_text(json.dumps(cfg))
    log = open(tmp_path / "ms.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "nodes.mapserver", "--config", str(tmp_path / "ms.json")],
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_for(lambda: os.path.exists(cfg["ready_file"]) or proc.poll() is not None)
    assert proc.poll() is None, (tmp_path / "ms.log").read_text()
    return proc, json.loads(open(cfg["ready_file"]).read())["port"]


def test_table_survives_restart_and_status_lists_xtr_ids(tmp_path):
    cfg = {"name": "ms", "listen": "127.0.0.1", "port": 0, "expiry_s": 60,
           "rloc_prefixes": ["127.0.0.0/8"], "max_ttl_min": 1440,
           "sites": [{"name": "as1", "key": KEY, "keys": {"3": "three"}, "prefixes": ["10.1.0.0/16"]}],
           "ready_file": str(tmp_path / "ms.ready"), "status_file": str(tmp_path / "ms.status.json"),
           "table_file": str(tmp_path / "ms.table.json")}
    proc, port = start(cfg, tmp_path)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cli.settimeout(30.0)  # generous for a loaded machine; nothing is resent
    try:
        rec = lc.EidRecord("10.1.0.0/16", ttl=1440, locators=[lc.Locator("127.0.0.5", corecast=True)])
        cli.sendto(lc.MapRegister(5, [rec], key_id=3, xtr_id=0xABC, site_id=7).encode(b"three"), ("127.0.0.1", port))
        note = lc.decode_control(cli.recvfrom(65535)[0])
        assert note.key_id == 3 and note.xtr_id == 0xABC and note.site_id == 7
        # the table file follows the change within a second, without SIGUSR1
        wait_for(lambda: read_status(cfg["table_file"]).get("registrations"), 30)
        wait_for(lambda: read_status(cfg["status_file"]).get("xtrs"), 30)  # {} until the file is written
        xtrs = json.load(open(cfg["status_file"]))["xtrs"]
        assert xtrs == {f"{0xABC:032x}": {"site": "as1", "site_id": f"{7:016x}", "prefixes": ["10.1.0.0/16"]}}
        os.kill(proc.pid, signal.SIGKILL)      # even a hard kill loses nothing written
        proc.wait(30)
        proc, port = start(cfg, tmp_path)
        req = lc.MapRequest(9, ["10.1.2.3/32"], ["127.0.0.1"]).encode()
        cli.sendto(req, ("127.0.0.1", port))
        reply = lc.decode_control(cli.recvfrom(65535)[0])
        assert reply.nonce == 9 and reply.records[0].locators[0].rloc == "127.0.0.5"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        counters = json.load(open(cfg["status_file"]))["counters"]
        assert counters["restore-loaded"] == 1 and counters["request-positive"] == 1
    finally:
        cli.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_expired_entries_dropped_at_load(tmp_path):
    table = {"registrations": [
        {"site": "as1", "prefix": "10.1.0.0/16", "ttl_min": 1440, "expires_at": time.time() - 5,
         "rlocs": [{"rloc": "127.0.0.5", "priority": 1, "weight": 100, "corecast": True, "reachable": True}]},
        {"site": "as1", "prefix": "10.1.7.0/24", "ttl_min": 1440, "expires_at": time.time() + 300,
         "rlocs": [{"rloc": "127.0.0.6", "priority": 1, "weight": 100, "corecast": False, "reachable": True}]}]}
    (tmp_path / "t.json").write_text(json.dumps(table))
    cfg = {"name": "ms", "listen": "127.0.0.1", "port": 0, "rloc_prefixes": ["127.0.0.0/8"],
           "sites": [{"name": "as1", "key": KEY, "prefixes": ["10.1.0.0/16"]}],
           "ready_file": str(tmp_path / "ms.ready"), "status_file": str(tmp_path / "ms.status.json"),
           "table_file": str(tmp_path / "t.json")}
    proc, _port = start(cfg, tmp_path)
    try:
        wait_for(lambda: os.path.exists(cfg["status_file"]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        status = json.load(open(cfg["status_file"]))
        assert status["registrations"] == 1 and status["counters"]["restore-expired"] == 1
        assert [r["prefix"] for r in json.load(open(cfg["table_file"]))["registrations"]] == ["10.1.7.0/24"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lig_probe_round_trip(capsys, monkeypatch):
    """``lig --probe`` against an xTR control core behind a loopback socket: probe bit, locator set, rtt."""
    from testbed import lig
    etr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    etr.bind(("127.0.0.1", 0))
    etr.settimeout(30.0)
    monkeypatch.setattr(lig, "LISP_CONTROL_PORT", etr.getsockname()[1])
    ctl = XtrControl(rloc="127.0.0.1", eid_prefixes=["10.1.0.0/16"], map_server="127.0.0.2",
                     map_resolver="127.0.0.2", key=b"k", map_cache=MapCache(), corecast=True)

    def serve() -> None:
        try:
            data, (src, sport) = etr.recvfrom(65535)
        except OSError:
            return
        for payload, dst, dport in ctl.on_control(data, src, sport, time.monotonic())[0]:
            etr.sendto(payload, (dst, dport))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert lig.lig_command(None, None, timeout=30.0, probe="127.0.0.1") == 0
    finally:
        thread.join(30)
        etr.close()
    out = capsys.readouterr().out
    assert "Send RLOC-probe to 127.0.0.1" in out and "Received map-reply (RLOC-probe) from 127.0.0.1" in out
    assert " ms" in out and "10.1.0.0/16, via map-reply, record ttl: 1440, auth, CoreCast-capable: yes" in out
    assert ctl.counters["probe-reply-sent"] == 1
    assert lig.lig_command(None, None) == 2 and lig.lig_command(None, None, probe="x") == 2


def test_a_corrupt_table_file_is_moved_aside_not_overwritten(tmp_path):
    import logging

    from nodes.mapserver import read_table
    path = tmp_path / "table.json"
    path.write_text("{not json")
    assert read_table(str(path), logging.getLogger("test")) == []
    assert not path.exists() and (tmp_path / "table.json.corrupt").read_text() == "{not json"
