"""compare's join delay for modes whose clients join (S,G) themselves (lispmc, ipmc): no namespaces here.

The gap (issue 12): compare skipped lispmc and ipmc in its join part. Now each such
client joins when a file named after its EID appears (client ``ssm_join_dir``), its
own join time is the join, its first arrival the first chunk, and
:func:`experiments.compare.sg_audience` gives delivery and the model that audience.
"""

from __future__ import annotations

import json
import logging
import socket
from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

from experiments import compare
from nodes.client import ClientNode, parse_config
from testbed.nodeutil import ConfigError, StopFlag
from testbed.stream.destinations import Event
from testbed.stream.records import Receipts, SourceRecord, verify

matplotlib.use("Agg")

PORT = 6000


def _source(n: int = 10) -> SourceRecord:
    seqs = np.arange(n)
    digests = np.arange(1000, 1000 + n, dtype=np.uint64)
    return SourceRecord({}, seqs, 100.0 + 0.01 * seqs, np.full(n, 1316), digests,
                        [Event(100.0, "join", "10.1.1.1", PORT, 0)])


def _receipts(src: SourceRecord, start: int, delay: float = 0.001) -> Receipts:
    return Receipts(src.times[start:] + delay, src.lengths[start:], src.digests[start:])


def _client(tmp_path, name: str, eids: list[str], joined: float | None):
    path = tmp_path / f"{name}.status.json"
    path.write_text(json.dumps({"ssm_joined": joined} if joined is not None else {}))
    return SimpleNamespace(config={"status_file": str(path), "eids": eids, "port": PORT})


def test_sg_audience_joins_each_client_at_its_first_chunk(tmp_path):
    src = _source()
    receipts = {"10.1.1.1": _receipts(src, 0), "10.1.1.2": _receipts(src, 3), "10.2.1.1": _receipts(src, 6),
                "10.3.1.1": _receipts(src, 8)}
    clients = [_client(tmp_path, "h1x1", ["10.1.1.1"], 99.0), _client(tmp_path, "h1x2", ["10.1.1.2"], 100.025),
               _client(tmp_path, "h2x1", ["10.2.1.1"], 100.031), _client(tmp_path, "h3x1", ["10.3.1.1"], None)]
    out = compare.sg_audience(src, receipts, clients)
    joins = {(ev.eid, ev.seq, ev.time) for ev in out.events if ev.kind == "join"}
    assert joins == {("10.1.1.1", 0, 100.0), ("10.1.1.2", 3, 100.025), ("10.2.1.1", 6, 100.031)}
    assert len(src.events) == 1  # the source's own record is left as it was
    report = verify(out, receipts, ["10.1.1.1", "10.1.1.2", "10.2.1.1", "10.3.1.1"], port=PORT)
    assert [report.eids[e].expected for e in ("10.1.1.1", "10.1.1.2", "10.2.1.1")] == [10, 7, 4]
    assert report.delivered_chunks == report.expected_chunks == 21
    assert report.eids["10.3.1.1"].expected == 0  # no join time: not counted as joined
    t_join, t_first = report.eids["10.2.1.1"].join_delays[0]
    assert (t_join, t_first) == (100.031, pytest.approx(100.061))  # chunk 6 sent at 100.06, 1 ms transit


def test_sg_audience_a_lost_chunk_after_the_first_counts_as_lost(tmp_path):
    src = _source()
    rec = _receipts(src, 4)
    gap = Receipts(np.delete(rec.times, 2), np.delete(rec.lengths, 2), np.delete(rec.digests, 2))
    out = compare.sg_audience(src, {"10.2.1.1": gap}, [_client(tmp_path, "h2x1", ["10.2.1.1"], 100.03)])
    row = verify(out, {"10.2.1.1": gap}, ["10.2.1.1"], port=PORT).eids["10.2.1.1"]
    assert (row.expected, row.delivered, row.lost) == (6, 5, 1)


def test_join_points_cover_every_mode_with_a_host_per_sg_client():
    params = {"join_reps": 3, "join_speed": 1.0, "speed": 10.0, "gap_s": 0.3, "lead_s": 0.5, "tail_s": 0.5,
              "chunk_bytes": 1316, "bitrate": 1_000_000, "modes": "unicast,lispmc,ipmc"}
    points = {p.modes[0]: p for p in compare.join_points(params)}
    assert set(points) == {"unicast", "lispmc", "ipmc"}
    assert "client_hosts" not in points["unicast"].topo
    for m in ("lispmc", "ipmc"):
        assert points[m].topo["client_hosts"] == "per-client" and points[m].topo["clients"] == "4,1,1,1"
        assert points[m].chunks > points["unicast"].chunks  # a longer tail: the last join is a cold one
    assert not compare.source_joined("ipmc") and compare.source_joined("corecast")


def _node(tmp_path, **cfg) -> ClientNode:
    conf = parse_config({"name": "c", "eids": ["10.1.1.2"], "ssm": {"source": "10.0.0.10", "group": "232.2.2.2"},
                         **cfg})
    node = ClientNode(conf, logging.getLogger("test"), StopFlag())
    node.sock = _FakeSock()
    return node


class _FakeSock:
    def __init__(self) -> None:
        self.opts: list[tuple[int, int, bytes]] = []

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        self.opts.append((level, name, value))


def test_client_joins_when_its_file_appears(tmp_path):
    node = _node(tmp_path, ssm_join_dir=str(tmp_path))
    assert node.join_due() is False and node.ssm_joined is None
    assert node.sock.opts[-1][1] == socket.SO_RCVTIMEO  # short receive timeout while the join is pending
    (tmp_path / "10.1.1.9").touch()  # another client's file
    assert node.join_due() is False
    (tmp_path / "10.1.1.2").touch()
    assert node.join_due() is True and node.ssm_joined is not None
    level, name, value = node.sock.opts[-2]
    assert (level, name) == (socket.IPPROTO_IP, 39)
    assert value == socket.inet_aton("232.2.2.2") + socket.inet_aton("0.0.0.0") + socket.inet_aton("10.0.0.10")
    assert node.status()["ssm_joined"] == node.ssm_joined
    n = len(node.sock.opts)
    assert node.join_due() is True and len(node.sock.opts) == n  # joins once


def test_client_without_join_dir_joins_at_once_and_leaves_the_timeout(tmp_path):
    node = _node(tmp_path)
    assert node.join_due() is True
    assert [o[1] for o in node.sock.opts] == [39]  # no SO_RCVTIMEO (an ffmpeg udp player shares the socket)


@pytest.mark.parametrize("cfg, message", [
    ({"ssm_join_dir": "/tmp"}, "needs 'ssm'"),
    ({"ssm": {"source": "10.0.0.10", "group": "232.2.2.2"}, "ssm_join_dir": "/nonexistent/dir"},
     "existing directory"),
])
def test_client_join_dir_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"name": "c", "eids": ["10.1.1.2"], **cfg})


def test_join_panel_shows_sg_modes():
    from matplotlib.figure import Figure

    from testbed.figures_compare import _join_panel
    rows = pd.DataFrame([{"mode": m, "cache": c, "join_delay_s": d}
                         for m, d in (("unicast", 0.01), ("lispmc", 0.2), ("ipmc", 0.02)) for c in ("warm", "cold")])
    ax = Figure().add_subplot(1, 1, 1)
    _join_panel(ax, rows, ["unicast", "lispmc", "ipmc"], {"unicast": "r", "lispmc": "g", "ipmc": "b"})
    assert [t.get_text() for t in ax.get_xticklabels()] == ["unicast", "lispmc", "ipmc"]
    assert len(ax.patches) == 6


def test_sg_stream_check_allows_one_copy_per_cold_join_only():
    row = {"point": "join-ipmc", "mode": "ipmc", "delivered_chunks": 10, "expected_chunks": 10, "corrupt_chunks": 0,
           "core_bytes": 100, "model_core_bytes": 100, "chunk_bytes": 1316, "interdomain_bytes": 5000 + 1344,
           "model_interdomain_bytes": 5000}
    joins = [{"cache": "warm"}, {"cache": "cold"}]
    assert compare.check_sg_stream(row, joins) == [] and joins[1]["graft_extra_bytes"] == 1344
    assert compare.check_sg_stream({**row, "interdomain_bytes": 5000 + 2 * 1344}, joins)  # two copies, one cold
    assert compare.check_sg_stream({**row, "interdomain_bytes": 4999}, joins)             # fewer than the model
    assert compare.check_sg_stream({**row, "delivered_chunks": 9}, joins)                 # a chunk lost
