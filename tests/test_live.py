"""``corecast run --live`` (testbed.live): counters gathered from status files, drawn in place or as log lines."""

from __future__ import annotations

import io
import json
import types

from testbed.net import capture

from testbed.live import LiveView, Snapshot, delivered_per_as, itr_counters, plain_line


class Clock:
    def __init__(self):
        self.t = 50.0

    def __call__(self):
        return self.t


class TTY(io.StringIO):
    def isatty(self):
        return True


def snap(**over) -> Snapshot:
    base = dict(label="smoke", mode="corecast", elapsed=1.25, chunks_sent=120, chunks_total=300,
                delivered={1: 240, 2: 238}, expected={1: 240, 2: 240}, uplink_bytes=214_000,
                itr={"corecast_itr.data-in": 120, "itr.encapsulated": 4})
    base.update(over)
    return Snapshot(**base)


def test_itr_counters_non_zero_from_itr_sections():
    status = {"itr": {"encapsulated": 4, "negative": 0, "flag": True}, "corecast_itr": {"data-in": 120, "ref-in": 0},
              "etr": {"decapsulated": 9}, "name": "x0"}
    assert itr_counters(status) == {"itr.encapsulated": 4, "corecast_itr.data-in": 120}
    assert itr_counters({}) == {} and itr_counters({"itr": "garbage"}) == {}
    many = {"itr": {f"c{i:02d}": i + 1 for i in range(20)}}
    assert len(itr_counters(many, limit=8)) == 8


def test_delivered_per_as_sums_eids_of_each_as():
    clients = [(1, "10.1.0.5"), (1, "10.1.0.6"), (2, "10.2.0.5")]
    statuses = [{"eids": {"10.1.0.5": {"received": 10}, "10.1.0.6": {"received": 9}}},
                {"eids": {"10.2.0.5": {"received": 7}, "10.9.9.9": {"received": 3}}}, {}, {"eids": None}]
    assert delivered_per_as(clients, statuses) == {1: 19, 2: 7}
    assert delivered_per_as(clients, []) == {1: 0, 2: 0}


def test_plain_line():
    assert plain_line(snap()) == ("live smoke/corecast 1.2s sent 120/300 | AS1 240/240 AS2 238/240 | uplink 0.214 MB | "
                                  "itr data-in=120 encapsulated=4")
    assert plain_line(snap(itr={}, expected={})).endswith("|  | uplink 0.214 MB | itr -")


def test_log_lines_every_interval_and_the_last_one():
    clock, out = Clock(), io.StringIO()
    view = LiveView(stream=out, interval=10, clock=clock)
    view.show(snap(chunks_sent=1))   # first: drawn
    clock.t += 5
    view.show(snap(chunks_sent=2))   # too soon
    assert not view.due()
    clock.t += 6
    assert view.due()
    view.show(snap(chunks_sent=3))
    clock.t += 1
    view.show(snap(chunks_sent=300), final=True)  # the stream ended: always drawn
    lines = out.getvalue().splitlines()
    assert [line.split(" sent ")[1].split(" ")[0] for line in lines] == ["1/300", "3/300", "300/300"]
    assert "\x1b" not in out.getvalue()


def test_terminal_redraws_in_place():
    clock, out = Clock(), TTY()
    view = LiveView(stream=out, clock=clock)
    for i in range(3):
        clock.t += 1
        view.show(snap(chunks_sent=i + 1), final=(i == 2))
    text = out.getvalue()
    assert "\x1b[" in text and "AS1" in text and "3/300 chunks sent" in text
    assert view._live is None  # stopped after the final snapshot


def test_broken_stream_turns_the_view_off():
    out = io.StringIO()
    out.close()
    view = LiveView(stream=out, interval=0)
    view.show(snap())
    assert not view.enabled
    view.show(snap())  # no error


def test_collect_from_status_files(tmp_path, monkeypatch):
    def status(name, data):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        return str(path)

    tx = {"value": 1000}

    class Node:
        name = "x0"

    def fake_counters(node, intf):
        assert (node.name, intf) == ("x0", "x0-eth1")
        return capture.IfCounters(tx["value"], 1, 0, 0)

    monkeypatch.setattr(capture, "read_counters", fake_counters)

    plan = types.SimpleNamespace(source_as=types.SimpleNamespace(xtr="x0", core_if="x0-eth1"),
                                 clients=lambda: [(1, "h1", "10.1.0.5"), (2, "h2", "10.2.0.5"), (2, "h2", "10.2.0.6")])
    clients = [types.SimpleNamespace(config={"status_file": status("h1", {"eids": {"10.1.0.5": {"received": 5}}})}),
               types.SimpleNamespace(config={"status_file": status("h2", {"eids": {"10.2.0.5": {"received": 4},
                                                                                    "10.2.0.6": {"received": 5}}})}),
               types.SimpleNamespace(config={"status_file": str(tmp_path / "missing.json")})]
    x0 = types.SimpleNamespace(config={"status_file": status("x0", {"corecast_itr": {"data-in": 5, "data-sent": 10}})})
    network = types.SimpleNamespace(plan=plan, label="p1", _clients=clients, xtr=lambda n: x0,
                                    tb=types.SimpleNamespace(node=lambda name: Node()))
    spec = types.SimpleNamespace(mode="corecast", chunks=10)
    clock, out = Clock(), io.StringIO()
    view = LiveView(stream=out, clock=clock, interval=1)
    first = view.collect(network, spec, {"chunks": 1})
    assert first.uplink_bytes == 0 and first.expected == {1: 1, 2: 2}
    tx["value"] = 7600
    clock.t += 2
    s = view.collect(network, spec, {"chunks_sent": 5})
    assert (s.label, s.mode, s.chunks_sent, s.chunks_total) == ("p1", "corecast", 5, 10)
    assert s.delivered == {1: 5, 2: 9} and s.expected == {1: 5, 2: 10}
    assert s.uplink_bytes == 6600 and s.elapsed == 2
    assert s.itr == {"corecast_itr.data-in": 5, "corecast_itr.data-sent": 10}
    view.tick(network, spec, {"chunks": 10}, final=True)
    assert out.getvalue().startswith("live p1/corecast 2.0s sent 10/10 | AS1 5/10 AS2 9/20")
    view.tick(types.SimpleNamespace(), spec, {}, final=True)  # a broken network object: nothing, no error
    view.begin("p1-corecast", 600)  # what measure.py does when the stream starts
    clock.t += 1
    later = view.collect(network, spec, {"chunks": 6})
    assert later.uplink_bytes == 7000 and later.elapsed == 1
