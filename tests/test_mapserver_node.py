"""The map-server node as a real process on loopback: register, resolve, garbage, SIGUSR1, SIGTERM."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from testbed.wire import lispctrl as lc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "node-test-key"


def wait_for(pred, timeout: float = 60.0) -> None:
    """Poll ``pred`` until true (a readiness wait, not a timing assertion: generous for a loaded machine)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def node(tmp_path):
    cfg = {"name": "ms", "listen": "127.0.0.1", "port": 0, "expiry_s": 60, "negative_ttl_min": 15,
           "sites": [{"name": "as1", "key": KEY, "algorithms": ["sha256", "sha1"], "prefixes": ["10.1.0.0/16"]}],
           "ready_file": str(tmp_path / "ms.ready"), "status_file": str(tmp_path / "ms.status.json"),
           "table_file": str(tmp_path / "ms.table.json"), "log_level": "info"}
    (tmp_path / "ms.json").write_text(json.dumps(cfg))
    log = open(tmp_path / "ms.log", "wb")
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "nodes.mapserver", "--config", str(tmp_path / "ms.json")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: os.path.exists(cfg["ready_file"]) or proc.poll() is not None)
        assert proc.poll() is None, (tmp_path / "ms.log").read_text()
        port = json.loads(open(cfg["ready_file"]).read())["port"]
        yield proc, port, cfg, tmp_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def exchange(sock: socket.socket, payload: bytes, port: int) -> bytes:
    sock.sendto(payload, ("127.0.0.1", port))
    data, _ = sock.recvfrom(65535)
    return data


def ask(sock: socket.socket, payload: bytes, port: int, nonce: int, deadline_s: float = 60.0) -> lc.MapReply:
    """Send a Map-Request (``payload``) and return the reply with ``nonce``, sending it again every 5 s.

    UDP: the request may be dropped with a full receive queue (3,000 junk datagrams ahead of it, a
    map-server slowed by a loaded machine). Answers to other nonces (mutated requests) are skipped."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        sock.sendto(payload, ("127.0.0.1", port))
        resend = min(end, time.monotonic() + 5.0)
        while time.monotonic() < resend:
            sock.settimeout(max(0.01, resend - time.monotonic()))
            try:
                reply = lc.decode_control(sock.recvfrom(65535)[0])
            except socket.timeout:
                break
            if reply.nonce == nonce:
                return reply
    raise AssertionError(f"no Map-Reply with nonce {nonce} within {deadline_s:g} s")


def test_node_serves_survives_garbage_and_writes_files(node):
    proc, port, cfg, tmp_path = node
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cli.settimeout(30.0)  # not resent: a second Map-Register would count twice
    my_port = cli.getsockname()[1]
    rec = lc.EidRecord("10.1.0.0/16", ttl=10, locators=[lc.Locator("127.0.0.1", local=True, corecast=True)])
    reg = lc.MapRegister(0x5151, [rec], proxy_reply=True, want_map_notify=True).encode(KEY.encode())
    note = exchange(cli, reg, port)
    assert isinstance(lc.decode_control(note), lc.MapNotify) and lc.verify_auth(note, KEY.encode())

    def resolve(eid: str, nonce: int) -> lc.MapReply:
        req = lc.MapRequest(nonce, [eid + "/32"], ["127.0.0.1"]).encode()
        reply = ask(cli, lc.Ecm("127.0.0.1", eid, my_port, 4342, req).encode(), port, nonce)
        assert isinstance(reply, lc.MapReply)
        return reply

    assert resolve("10.1.2.3", 11).records[0].locators[0].corecast
    assert resolve("192.168.0.1", 12).records[0].locators == []

    # garbage: random bytes and mutations of valid messages (the process must not care)
    rng = random.Random(1)
    junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    junk.bind(("127.0.0.1", 0))
    valid = [reg, lc.Ecm("127.0.0.1", "10.1.2.3", junk.getsockname()[1], 4342,
                         lc.MapRequest(1, ["10.1.2.3/32"], ["127.0.0.1"]).encode()).encode()]
    for i in range(3000):
        if i % 2:
            msg = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
        else:
            msg = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 4)):
                msg[rng.randrange(len(msg))] = rng.getrandbits(8)
            msg = bytes(msg[:rng.randrange(1, len(msg) + 1)])
        junk.sendto(msg, ("127.0.0.1", port))
    junk.close()
    assert proc.poll() is None
    assert resolve("10.1.9.9", 13).records[0].locators[0].rloc == "127.0.0.1"

    proc.send_signal(signal.SIGUSR1)
    wait_for(lambda: os.path.exists(cfg["table_file"]))
    table = json.loads(open(cfg["table_file"]).read())
    assert [r["prefix"] for r in table["registrations"]] == ["10.1.0.0/16"]
    wait_for(lambda: "registration table: 1 prefixes" in (tmp_path / "ms.log").read_text())

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    status = json.loads(open(cfg["status_file"]).read())
    counters = status["counters"]
    assert counters["register-ok"] == 1 and counters["request-positive"] >= 2
    assert sum(v for k, v in counters.items() if k.startswith(("decode-", "ecm-", "register-bad"))) > 100
    assert status["registrations"] == 1 and status["multicast"] == {}
    table = json.loads(open(cfg["table_file"]).read())
    assert table["registrations"][0]["rlocs"][0]["corecast"] is True
    log = (tmp_path / "ms.log").read_text()
    assert "dropped message from 127.0.0.1" in log
    assert log.count("dropped message from") < 1000  # rate-limited, not one line per bad datagram


def test_bad_config_is_one_line_exit_2(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"name": "ms", "listen": "127.0.0.1", "sites": [
        {"name": "a", "key": "k", "prefixes": ["10.1.0.1/16"]}]}))
    res = subprocess.run([sys.executable, "-m", "nodes.mapserver", "--config", str(tmp_path / "bad.json")],
                         cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "10.1.0.1/16" in res.stderr


def test_lig_against_the_node(node, capsys, monkeypatch):
    from testbed import lig
    proc, port, cfg, _tmp = node
    monkeypatch.setattr(lig, "LISP_CONTROL_PORT", port)  # the node listens on an ephemeral port here
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(("127.0.0.1", 0))
    cli.settimeout(30.0)
    rec = lc.EidRecord("10.1.0.0/16", ttl=1440, locators=[
        lc.Locator("192.0.2.1", 1, 100, corecast=True), lc.Locator("192.0.2.2", 2, 100, reachable=False)])
    exchange(cli, lc.MapRegister(7, [rec]).encode(KEY.encode()), port)

    assert lig.lig_command("10.1.0.10", "127.0.0.1", timeout=30.0, count=2) == 0
    out = capsys.readouterr().out
    assert out.count("Received map-reply from 127.0.0.1") == 2 and " ms" in out
    assert "10.1.0.0/16, via map-reply, record ttl: 1440, not auth, CoreCast-capable: yes" in out
    assert "192.0.2.1        up     1/100            yes" in out
    assert "192.0.2.2        down   2/100            no" in out

    assert lig.lig_command("192.168.7.7", "127.0.0.1", source="127.0.0.1", timeout=30.0) == 0
    out = capsys.readouterr().out
    assert "Negative cache entry, action: natively-forward" in out and "record ttl: 15" in out
    assert proc.poll() is None


def test_lig_timeout_and_bad_arguments(capsys, monkeypatch):
    from testbed import lig
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))  # bound but never answers
    monkeypatch.setattr(lig, "LISP_CONTROL_PORT", silent.getsockname()[1])
    try:
        assert lig.lig_command("10.1.0.10", "127.0.0.1", timeout=0.2) == 1
        assert "No map-reply received" in capsys.readouterr().out
    finally:
        silent.close()
    assert lig.lig_command("not-an-eid", "127.0.0.1") == 2
    assert lig.lig_command("10.1.0.10", "1.2.3") == 2
    assert lig.lig_command("10.1.0.10", "127.0.0.1", count=0) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and all(line.startswith("lig: ") for line in err.splitlines())
