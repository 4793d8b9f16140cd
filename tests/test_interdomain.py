"""Inter-domain link measurement without a network: nft rules and counters, audience runs, links.csv rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from testbed.addressing import make_plan
from testbed.interdomain import audience_segments, link_columns, model_link_bytes, write_link_rows
from testbed.modemodels import MODELS, CoreShape
from testbed.net import links as L
from testbed.params import topo_params
from testbed.results import LINK_COLUMNS
from testbed.stream.destinations import Event
from testbed.stream.records import SourceRecord

P = 1316


def plan(**values):
    return make_plan(topo_params(values))


def record(seqs, events):
    n = len(seqs)
    return SourceRecord({}, np.array(seqs, dtype=np.int64), np.zeros(n), np.full(n, P), np.zeros(n, np.uint64),
                        events)


def test_links_of_the_star_plan_match_the_model_names():
    p = plan(ases=3, clients="1,0,2")
    links = L.interdomain_links(p)
    assert [(x.name, x.node, x.intf, x.peer) for x in links] == [
        ("x0-core", "x0", "x0-eth1", "core"), ("x1-core", "x1", "x1-eth1", "core"),
        ("x2-core", "x2", "x2-eth1", "core"), ("x3-core", "x3", "x3-eth1", "core")]
    assert L.core_shape(p) == CoreShape.star(3)


def test_ruleset_counts_data_before_control_on_both_ports_and_directions():
    text = L.ruleset(["x1-eth1", "x1-eth2"])
    assert text.count("counter l") == 8 and "table ip corecast_links {" in text
    assert "type filter hook postrouting priority 300" in text and "type filter hook prerouting priority -300" in text
    up = text[text.index("chain up"):text.index("chain down")]
    rules = [line.strip() for line in up.splitlines() if "x1-eth1" in line]
    assert rules == [
        'oifname "x1-eth1" udp sport 4341 counter name "l0_up_data" accept',
        'oifname "x1-eth1" udp dport 4341 counter name "l0_up_data" accept',
        'oifname "x1-eth1" udp sport 4342 counter name "l0_up_ctl" accept',
        'oifname "x1-eth1" udp dport 4342 counter name "l0_up_ctl" accept']
    assert 'iifname "x1-eth2" udp dport 4341 counter name "l1_down_data" accept' in text


def test_parse_counters():
    text = json.dumps({"nftables": [{"metainfo": {"version": "1.0.6"}},
                                    {"counter": {"name": "l0_up_data", "packets": 3, "bytes": 384}}]})
    assert L.parse_counters(text) == {"l0_up_data": (3, 384)}
    for bad in ("", "{}", "not json", '{"nftables": [{"counter": {"name": "x"}}]}'):
        with pytest.raises(L.LinkError):
            L.parse_counters(bad)


class FakeNode:
    """popen runs a local command instead of one inside a namespace."""

    def __init__(self, name, script):
        self.name, self.script = name, script

    def popen(self, argv, **kw):
        return subprocess.Popen([sys.executable, "-c", self.script], start_new_session=True, **kw)


class FakeTb:
    def __init__(self, nodes):
        self.nodes = nodes

    def node(self, name):
        return self.nodes[name]


def _listing(values):
    items = [{"counter": {"name": f"l0_{d}_{k}", "packets": v, "bytes": 100 * v}}
             for (d, k), v in values.items()]
    return f"import sys; sys.stdin.read() if not sys.stdin.isatty() else None; print({json.dumps({'nftables': items})!r})"


def test_counters_read_from_every_node_per_direction():
    p = plan(ases=1, clients=1)
    vals = {("up", "data"): 5, ("up", "ctl"): 1, ("down", "data"): 0, ("down", "ctl"): 2}
    tb = FakeTb({"x0": FakeNode("x0", _listing(vals)), "x1": FakeNode("x1", _listing(vals))})
    meter = L.LinkCounters(tb, L.interdomain_links(p))
    got = meter.read()
    assert meter.installed
    assert got[("x1-core", "up")] == L.LinkCount(500, 5, 100, 1)
    assert got[("x0-core", "down")] == L.LinkCount(0, 0, 200, 2)
    assert L.delta({("a", "up"): L.LinkCount(1, 1, 0, 0)}, {("a", "up"): L.LinkCount(9, 3, 2, 1)}) == \
        {("a", "up"): L.LinkCount(8, 2, 2, 1)}


def test_counters_give_up_at_their_deadline_with_one_line(monkeypatch):
    monkeypatch.setattr(L, "NFT_TIMEOUT", 0.5)
    tb = FakeTb({"x0": FakeNode("x0", "import time; time.sleep(30)")})
    meter = L.LinkCounters(tb, L.interdomain_links(plan(ases=1, clients=1))[:1])
    with pytest.raises(L.LinkError, match="nft in x0 did not finish within 0.5 s"):
        meter.install()
    tb.nodes["x0"] = FakeNode("x0", "import sys; sys.stderr.write('Error: no such table\\n'); sys.exit(1)")
    with pytest.raises(L.LinkError, match="nft in x0 failed: Error: no such table"):
        meter.install()


def test_audience_segments_follow_joins_and_leaves():
    p = plan(ases=2, clients="2,1")
    (a1, b1), (a2,) = [e for _h, e in p.client_ases[0].clients], [e for _h, e in p.client_ases[1].clients]
    ev = [Event(0.0, "join", a1, 6000, 0), Event(0.1, "join", b1, 6000, 4), Event(0.2, "join", a2, 6000, 4),
          Event(0.3, "leave", a1, 6000, 7), Event(0.4, "join", "10.9.9.9", 6000, 1),
          Event(0.5, "join", a1, 6000, 0)]  # a repeated join changes nothing
    rec = record(range(10), ev)
    assert audience_segments(p, rec) == [(4, [1, 0]), (3, [2, 1]), (3, [1, 1])]
    got = model_link_bytes(p, MODELS["corecast"], P, rec)
    assert got[("x1-core", "down")] == 4 * (1364 + 68) + 3 * (1364 + 136) + 3 * (1364 + 68)
    assert got[("x2-core", "down")] == 6 * (1364 + 68)
    assert got[("x0-core", "up")] == got[("x1-core", "down")] + got[("x2-core", "down")]
    static = record(range(5), [Event(0.0, "join", e, 6000, 0) for _a, _h, e in p.clients()])
    assert audience_segments(p, static) == [(5, [2, 1])]
    assert audience_segments(p, record([], [])) == []


def test_links_csv_rows_and_measurement_columns(tmp_path):
    p = plan(ases=1, clients=2)
    links = L.interdomain_links(p)
    measured = {("x0-core", "up"): L.LinkCount(2760, 2, 0, 0), ("x0-core", "down"): L.LinkCount(0, 0, 80, 1),
                ("x1-core", "up"): L.LinkCount(0, 0, 0, 0), ("x1-core", "down"): L.LinkCount(2760, 2, 0, 0)}
    model = {k: v.bytes for k, v in measured.items()}
    captured = dict(measured)
    captured[("x1-core", "down")] = L.LinkCount(1380, 1, 0, 0)
    path = tmp_path / "links.csv"
    label = {"experiment": "t", "point": "p", "mode": "unicast", "stream": "1:p-unicast"}
    rows = write_link_rows(str(path), links, measured, model, label, captured)
    write_link_rows(str(path), links, measured, model, {**label, "stream": "2:p-unicast"})
    with open(path) as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0])[:len(LINK_COLUMNS)] == list(LINK_COLUMNS) and len(table) == 8
    assert table[3]["direction"] == "down" and table[3]["bytes"] == "2760" and table[3]["capture_bytes"] == "1380"
    assert table[1]["control_bytes"] == "80" and table[7]["capture_bytes"] == ""
    cols = link_columns(rows)
    assert cols["interdomain_bytes"] == cols["model_interdomain_bytes"] == 5520
    assert cols["max_link_bytes"] == 2760 and cols["interdomain_packets"] == 4
    assert cols["links_capture_mismatches"] == 1


@pytest.mark.net
def test_nft_counters_count_ip_total_lengths_data_apart_from_control():
    """In a private network namespace: the counters' bytes are IP total lengths, 4341 before 4342 (as decode)."""
    script = f"""
import json, socket, subprocess, sys
sys.path.insert(0, {repr(sys.path[0])})
from testbed.net.links import ruleset, parse_counters, TABLE
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
subprocess.run(["nft", "-f", "-"], input=ruleset(["lo"]), text=True, check=True)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 4341))
for size in (100, 1316):
    s.sendto(b"x" * size, ("127.0.0.1", 5555))      # sport 4341: data
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.sendto(b"y" * 50, ("127.0.0.1", 4342))            # dport 4342: control
c.sendto(b"z" * 10, ("127.0.0.1", 7777))            # neither: not counted
out = subprocess.run(["nft", "-j", "list", "counters", "table", "ip", TABLE], capture_output=True, text=True)
print(json.dumps(parse_counters(out.stdout)))
"""
    res = subprocess.run(["unshare", "-n", sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["l0_up_data"] == [2, 128 + 1344] and got["l0_down_data"] == [2, 128 + 1344]
    assert got["l0_up_ctl"] == [1, 78] and got["l0_down_ctl"] == [1, 78]


def test_counters_are_read_in_batches(monkeypatch):
    monkeypatch.setattr(L, "BATCH", 2)
    p = plan(ases=4, clients=1)
    vals = {("up", "data"): 1, ("up", "ctl"): 0, ("down", "data"): 2, ("down", "ctl"): 0}
    started = []

    class Counting(FakeNode):
        def popen(self, argv, **kw):
            started.append(self.name)
            return super().popen(argv, **kw)

    tb = FakeTb({f"x{i}": Counting(f"x{i}", _listing(vals)) for i in range(5)})
    got = L.LinkCounters(tb, L.interdomain_links(p)).read()
    assert len(got) == 10 and got[("x4-core", "down")] == L.LinkCount(200, 2, 0, 0)
    assert started == ["x0", "x1", "x2", "x3", "x4"] * 2  # install, then read, two nodes at a time
