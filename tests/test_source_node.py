"""The source node on loopback: unicast and corecast datagrams, join/leave over the control socket,
SIGTERM, content that ends early, bad configs. Every stream is short and sped up."""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from ports import free_port
from testbed.nodeutil import read_status
from testbed.stream.control import control_request
from testbed.stream.content import generate_ts_file
from testbed.stream.records import read_client_records, read_source_record, verify
from testbed.wire import corecast
from testbed.wire.corecast import chunk_hash

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/ffmpeg") and not os.path.exists("/usr/local/bin/ffmpeg"),
                                reason="ffmpeg not installed")


def start(kind: str, cfg: dict, tmp_path) -> subprocess.Popen:
    """Write the config, start ``python -m nodes.KIND``, wait for its ready file."""
    name = cfg["name"]
    cfg.setdefault("ready_file", str(tmp_path / f"{name}.ready"))
    cfg.setdefault("status_file", str(tmp_path / f"{name}.status"))
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    err = open(tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", f"nodes.{kind}", "--config", str(path)], cwd=ROOT,
                            stderr=err)
    deadline = time.monotonic() + 60  # a Python start (numpy, scapy) on a loaded 2-core machine
    while not os.path.exists(cfg["ready_file"]):
        if proc.poll() is not None:
            return proc
        assert time.monotonic() < deadline, f"{name} not ready"
        time.sleep(0.02)
    return proc


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


def status(tmp_path, name: str) -> dict:
    return json.loads((tmp_path / f"{name}.status").read_text())


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("content") / "two.ts"
    generate_ts_file(str(path), 2, 1_000_000)        # 2 s, 190 chunks of 1316 bytes
    return str(path)


def client_cfg(tmp_path, name, port, eids, bind="127.0.0.1"):
    return {"name": name, "port": port, "bind": bind, "eids": eids, "record_file": str(tmp_path / f"{name}.rec")}


def source_cfg(tmp_path, **kw):
    cfg = {"name": "src", "mode": "unicast", "eid": "127.0.0.1", "src_port": free_port(), "speed": 20,
           "record_file": str(tmp_path / "src.rec"), "stall_timeout_s": 30.0}  # ffmpeg may lag on a loaded machine
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("content", ["file", "ffmpeg"])
def test_unicast_client_gets_the_sources_digest_sequence(tmp_path, ts_file, content):
    port = free_port()
    client = start("client", client_cfg(tmp_path, "cl", port, ["127.0.0.1"]), tmp_path)
    spec = f"file:{ts_file}" if content == "file" else "ffmpeg"
    src = start("source", source_cfg(tmp_path, content=spec, chunks=120, clients=[["127.0.0.1", port]]), tmp_path)
    assert src.wait(30) == 0
    assert stop(client) == 0
    st = status(tmp_path, "src")
    assert (st["state"], st["chunks"], st["datagrams"], st["bytes"]) == ("done", 120, 120, 120 * 1316)
    assert st["ip_bytes"] == 120 * (28 + 1316)
    record = read_source_record(str(tmp_path / "src.rec"))
    assert len(record) == 120 and record.lengths.tolist() == [1316] * 120
    report = verify(record, read_client_records(str(tmp_path / "cl.rec")), ["127.0.0.1"])
    assert report.all_exact
    assert report.delivered_chunks == report.expected_chunks == 120


def test_corecast_data_then_refs_to_the_service(tmp_path, ts_file):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as svc:
        svc.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        svc.bind(("127.0.0.1", 0))
        svc.settimeout(10)
        clients = [["127.0.0.5", 6000], ["127.0.0.6", 6001], ["127.0.0.7", 6000]]
        cfg = source_cfg(tmp_path, mode="corecast", content=f"file:{ts_file}", chunks=25, stream_id=9,
                         service={"addr": "127.0.0.1", "port": svc.getsockname()[1]}, clients=clients)
        src = start("source", cfg, tmp_path)
        assert src.wait(30) == 0
        grams = [svc.recvfrom(65535) for _ in range(25 * 4)]
    record = read_source_record(str(tmp_path / "src.rec"))
    for seq in range(25):
        data, peer = grams[seq * 4]
        assert peer == ("127.0.0.1", cfg["src_port"])
        msg = corecast.decode(data)
        assert isinstance(msg, corecast.CoreCastData) and (msg.stream_id, msg.seq) == (9, seq)
        assert len(data) + 28 == 40 + 1316
        assert int.from_bytes(chunk_hash(msg.chunk), "big") == record.digests[seq]
        for (ref_bytes, _), (eid, port) in zip(grams[seq * 4 + 1: seq * 4 + 4], clients):
            assert len(ref_bytes) + 28 == 60
            ref = corecast.decode(ref_bytes)
            assert ref == corecast.CoreCastRef(9, seq, chunk_hash(msg.chunk), socket.inet_aton("127.0.0.1"),
                                               socket.inet_aton(eid), cfg["src_port"], port)
    st = status(tmp_path, "src")
    assert st["by_kind"] == {"data": {"datagrams": 25, "bytes": 25 * 1328}, "ref": {"datagrams": 75, "bytes": 75 * 32}}
    assert st["ip_bytes"] == 25 * (40 + 1316) + 75 * 60


def test_max_pps_spreads_a_chunk_instead_of_one_burst(tmp_path, ts_file):
    """Issue 16 (k = 100,000): a chunk's DATA and k REFs sent as one burst overflowed the ITR's service socket.
    With ``max_pps`` the k + 1 datagrams of a chunk take at least k / max_pps s (a lower bound: load only slows it),
    and none is lost or reordered."""
    n_clients, cap = 600, 2000.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as svc:
        svc.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        svc.bind(("127.0.0.1", 0))
        svc.settimeout(30)
        svc.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)  # arrival times from the kernel, not from our reads
        clients = [[f"127.0.{1 + i // 250}.{1 + i % 250}", 6000] for i in range(n_clients)]
        cfg = source_cfg(tmp_path, mode="corecast", content=f"file:{ts_file}", chunks=1, speed=1000, max_pps=cap,
                         service={"addr": "127.0.0.1", "port": svc.getsockname()[1]}, clients=clients)
        src = start("source", cfg, tmp_path)
        first, t_first = stamped_recv(svc)
        got = [stamped_recv(svc) for _ in range(n_clients)]
        grams = [g for g, _t in got]
        # measured by the kernel on arrival: a test process slowed by a loaded machine reads a queue that
        # built up while it waited, in a burst, which its own clock would take for an unpaced send
        spread = got[-1][1] - t_first
        assert src.wait(30) == 0
    assert isinstance(corecast.decode(first), corecast.CoreCastData)
    assert [socket.inet_ntoa(corecast.decode(g).dst_eid) for g in grams] == [eid for eid, _p in clients]
    assert spread >= 0.8 * n_clients / cap  # 0.3 s paced, less slack for the slices; one burst takes ~10 ms
    assert parse_config_kw(tmp_path, max_pps=0) == "max_pps"


def test_stop_signal_ends_a_paced_chunk_at_once(tmp_path, ts_file):
    """A slow ``max_pps`` (0.01: 100 s between two datagrams, a valid config) must not make the source deaf to
    SIGTERM: the signal ends the wait and the rest of the chunk leaves unpaced (docs/streaming.md). It slept the
    whole 100 s (time.sleep resumes after the signal's handler), past the testbed's 30 s stop deadline."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as svc:
        svc.bind(("127.0.0.1", 0))
        svc.settimeout(60)
        clients = [["127.0.0.2", 6000], ["127.0.0.3", 6000]]
        cfg = source_cfg(tmp_path, mode="corecast", content=f"file:{ts_file}", chunks=1, speed=1000, max_pps=0.01,
                         service={"addr": "127.0.0.1", "port": svc.getsockname()[1]}, clients=clients)
        src = start("source", cfg, tmp_path)
        first = svc.recv(65535)  # the DATA: the source now waits 100 s before the first REF
        src.send_signal(signal.SIGTERM)
        try:
            rc = src.wait(60)  # a loaded machine's slack; without the fix the wait alone is 100 s
        except subprocess.TimeoutExpired:
            src.kill()
            src.wait(30)
            raise AssertionError("the source slept through SIGTERM in max_pps pacing") from None
        refs = [svc.recv(65535) for _ in clients]
    assert rc == 0
    assert isinstance(corecast.decode(first), corecast.CoreCastData)
    assert [socket.inet_ntoa(corecast.decode(g).dst_eid) for g in refs] == [eid for eid, _p in clients]
    assert status(tmp_path, "src")["state"] == "stopped"


SO_TIMESTAMPNS = 35  # Linux, <asm-generic/socket.h>; SCM_TIMESTAMPNS has the same value


def stamped_recv(sock: socket.socket) -> tuple[bytes, float]:
    """A datagram and its kernel arrival time (s, SO_TIMESTAMPNS must be on)."""
    data, anc, _flags, _addr = sock.recvmsg(65535, 64)
    for level, kind, raw in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("@qq", raw[:16])
            return data, sec + nsec / 1e9
    raise AssertionError("no kernel timestamp on the datagram")


def parse_config_kw(tmp_path, **kw) -> str:
    """The field a source config with ``kw`` is refused for (one-line ConfigError), '' if accepted."""
    from nodes.source import parse_config
    from testbed.nodeutil import ConfigError
    try:
        parse_config(source_cfg(tmp_path, **kw))
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return next((k for k in kw if k in str(exc)), str(exc))
    return ""


def wait_seq(target: str, at_least: int) -> int:
    """Poll the source's status command until its next seq reaches ``at_least``."""
    deadline = time.monotonic() + 20
    while True:
        reply = control_request(target, ["status"])[0]
        seq = int(reply.split("seq=")[1].split()[0])
        if seq >= at_least:
            return seq
        assert time.monotonic() < deadline, reply
        time.sleep(0.02)


@pytest.mark.parametrize("control", ["udp", "unix"])
def test_join_leave_mid_stream_then_sigterm(tmp_path, ts_file, control):
    port = free_port()
    a, b = "127.0.0.1", "127.0.0.2"
    client = start("client", client_cfg(tmp_path, "cl", port, [a, b], bind="0.0.0.0"), tmp_path)
    if control == "udp":
        ctl_port = free_port()
        extra = {"control": {"addr": "127.0.0.1", "port": ctl_port}}
        target = f"127.0.0.1:{ctl_port}"
    else:
        target = str(tmp_path / "src.ctl")
        extra = {"control_socket": target}
    # speed 0.25: the 190 chunks take 8 s, so a test process slowed by a loaded machine still joins, leaves
    # and stops the source before its content ends (at speed 1 it had 2 s for all of it)
    src = start("source", source_cfg(tmp_path, content=f"file:{ts_file}", speed=0.25, clients=[[a, port]], **extra),
                tmp_path)
    wait_seq(target, 5)
    replies = control_request(target, [f"join {b} {port}", f"join {b} {port}", "list"])
    assert replies[0].startswith(f"ok join {b} {port} seq=")
    join_seq = int(replies[0].split("seq=")[1])
    assert replies[1] == f"err already-joined {b} {port}"
    assert replies[2] == f"ok list 2 {a}:{port} {b}:{port}"
    wait_seq(target, join_seq + 10)
    reply = control_request(target, [f"leave {a} {port}"])[0]
    leave_seq = int(reply.split("seq=")[1])
    wait_seq(target, leave_seq + 10)
    assert stop(src) == 0                              # SIGTERM mid-stream: clean stop, record written
    assert stop(client) == 0
    st = status(tmp_path, "src")
    assert st["state"] == "stopped" and st["control"]["joins"] == 1 and st["control"]["leaves"] == 1
    record = read_source_record(str(tmp_path / "src.rec"))
    assert record.meta["state"] == "stopped"
    assert [(e.kind, e.eid, e.seq) for e in record.events] == [("join", a, 0), ("join", b, join_seq),
                                                                ("leave", a, leave_seq)]
    total = len(record)
    assert leave_seq + 10 <= total < 190
    report = verify(record, read_client_records(str(tmp_path / "cl.rec")), [a, b], port=port)
    assert report.all_exact
    assert report.eids[a].expected == leave_seq
    assert report.eids[b].expected == total - join_seq
    join_time, first = report.eids[b].join_delays[0]
    assert 0 <= first - join_time < 0.5               # next chunk within a chunk period or so
    if control == "unix":
        assert not os.path.exists(target)             # socket file removed at exit


def test_start_at_delays_the_first_chunk(tmp_path, ts_file):
    """start_at lies 1 s ahead; if the source's start-up (a loaded machine) used all of it, the source starts
    at once and the test learns nothing, so it tries again with 4 s, then 15 s of lead."""
    for lead in (1.0, 4.0, 15.0):
        run = tmp_path / f"lead{lead:g}"
        run.mkdir()
        start_at = time.time() + lead
        src = start("source", source_cfg(run, content=f"file:{ts_file}", chunks=10, start_at=start_at,
                                         clients=[["127.0.0.1", free_port()]]), run)
        assert src.wait(60) == 0
        waited = re.search(r", start in (-?[0-9.]+) s", (run / "src.log").read_text())
        assert waited, (run / "src.log").read_text()
        if float(waited.group(1)) > 0:  # the source was up before start_at: it waited for it
            break
    else:
        pytest.fail("the source never became ready within 15 s of its start")
    record = read_source_record(str(run / "src.rec"))
    assert record.times[0] >= start_at
    assert record.events[0].time == pytest.approx(start_at, abs=1e-3)     # initial clients join at the start


def test_content_that_ends_early_exits_nonzero(tmp_path, ts_file):
    src = start("source", source_cfg(tmp_path, content=f"file:{ts_file}", chunks=500, speed=50,
                                     clients=[["127.0.0.1", free_port()]]), tmp_path)
    assert src.wait(30) == 1
    st = status(tmp_path, "src")
    assert st["state"] == "content-ended" and "after 190 chunks" in st["error"]
    assert len(read_source_record(str(tmp_path / "src.rec"))) == 190
    assert "content-ended" in (tmp_path / "src.log").read_text()


@pytest.mark.parametrize("change, words", [
    ({"mode": "multicast"}, "mode"),
    ({"chunk_bytes": 1000}, "chunk_bytes"),
    ({"eid": "not-an-ip"}, "eid"),
    ({"mode": "corecast"}, "service"),
    ({"content": "file:/nonexistent.ts"}, "no such file"),
    ({"clients": [["10.1.0.10", 70000]]}, "'clients[0][1]'"),
    ({"chunk_bytes": 1400}, "not a multiple of 188"),
    ({"chunk_bytes": 1200}, "not a multiple of 188"),
    ({"chunks": 5, "duration_s": 1}, "not both"),
    ({"eid": "192.0.2.1"}, "cannot bind"),
])
def test_bad_config_is_one_line_and_exit_2(tmp_path, change, words):
    cfg = source_cfg(tmp_path, content="ffmpeg", chunks=5)
    cfg.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, "-m", "nodes.source", "--config", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("source: ") and words in lines[0]


def test_ts_content_takes_only_multiples_of_188(tmp_path, ts_file):
    """Issue 11 item 9: TS content (ffmpeg, a .ts file, a file of TS packets) keeps whole TS packets per chunk;
    other content may be cut at any size."""
    from nodes.source import parse_config
    from testbed.nodeutil import ConfigError
    raw = tmp_path / "data.bin"
    raw.write_bytes(bytes(range(256)) * 40)
    packets = tmp_path / "noext"
    packets.write_bytes((b"\x47" + bytes(187)) * 20)
    for content in ("ffmpeg", f"file:{ts_file}", f"file:{packets}"):
        for size in (1200, 1300, 1400):
            with pytest.raises(ConfigError, match=f"chunk_bytes {size} is not a multiple of 188"):
                parse_config(source_cfg(tmp_path, content=content, chunk_bytes=size))
        assert parse_config(source_cfg(tmp_path, content=content, chunk_bytes=1316)).chunk_bytes == 1316
    for size in (1200, 1300, 1400):
        assert parse_config(source_cfg(tmp_path, content=f"file:{raw}", chunk_bytes=size)).chunk_bytes == size


def test_control_client_cli_reports_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nodes.source", "--control", str(tmp_path / "nothing.sock"),
                           "list"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and proc.stderr.startswith("source control:")


def test_p2p_source_keeps_its_port_open_until_linger_until(tmp_path, ts_file):
    """Review finding: the p2p source exited after its last chunk while peers still sent it buffer maps; each
    got an ICMP port unreachable that crossed the inter-domain links and no sender counted (links != peers'
    counters at one client per AS). With ``linger_until`` its port stays open, unread, until the peers stop."""
    port = free_port()
    linger = time.time() + 8.0  # room for a slow start on a loaded machine; the asserts below allow a late one
    cfg = source_cfg(tmp_path, mode="p2p", src_port=port, content=f"file:{ts_file}", chunks=3,
                     p2p={"asn": 0, "tracker_port": free_port(), "linger_until": linger})
    src = start("source", cfg, tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.connect(("127.0.0.1", port))
        deadline = time.monotonic() + 30
        while read_status(str(tmp_path / "src.status")).get("chunks", 0) < 3 and src.poll() is None:  # {} until written
            assert time.monotonic() < deadline, "the source never sent its 3 chunks"
            time.sleep(0.05)
        try:
            for _ in range(4):  # the peers' last buffer maps
                peer.send(b"buffer map")
                time.sleep(0.05)
        except ConnectionRefusedError:  # only once linger_until has passed may the port be closed
            assert time.time() >= linger, "the source closed its port before linger_until"
        assert src.poll() is None or time.time() >= linger
    assert src.wait(30) == 0
    assert time.time() >= linger


def test_a_removed_state_directory_is_counted_not_a_crash(tmp_path, ts_file):
    """The run's state directory removed mid-stream: the source's status writes fail, are counted and logged at
    exit, and the stream and its record go on (it died with a FileNotFoundError traceback, exit 1)."""
    import shutil
    state = tmp_path / "state"
    state.mkdir()
    cfg = source_cfg(tmp_path, content=f"file:{ts_file}", chunks=150, speed=1, clients=[["127.0.0.1", free_port()]],
                     status_file=str(state / "src.status"))
    src = start("source", cfg, tmp_path)
    deadline = time.monotonic() + 60
    while not (state / "src.status").exists():
        assert time.monotonic() < deadline and src.poll() is None, "no status file"
        time.sleep(0.01)
    shutil.rmtree(state)
    assert src.wait(60) == 0, (tmp_path / "src.log").read_text()[-800:]
    log = (tmp_path / "src.log").read_text()
    assert "Traceback" not in log and re.search(r"status file \S+: [1-9]\d* writes failed", log)
    assert len(read_source_record(str(tmp_path / "src.rec"))) == 150
