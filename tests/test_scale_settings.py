"""Settings that keep a 1,000-AS network light: xTR status files written less often at scale."""

from __future__ import annotations

import pytest

from nodes.xtr import load
from testbed.addressing import make_plan
from testbed.net.lisp import STATUS_ASES, lisp_daemons, status_interval
from testbed.nodeutil import ConfigError
from testbed.params import topo_params


class FakeTb:
    def node(self, name):
        return name


def plan_of(ases: int):
    return make_plan(topo_params({"ases": ases, "clients": 1, "client_hosts": "per-as"}))


def test_status_interval_grows_above_a_hundred_ases_but_not_for_x0():
    small, big = plan_of(4), plan_of(1000)
    assert {status_interval(small, a) for a in small.all_ases} == {1.0}
    assert status_interval(big, big.all_ases[0]) == 1.0
    assert status_interval(big, big.all_ases[1]) == pytest.approx(1001 / STATUS_ASES)


def test_lisp_daemons_render_the_interval_and_the_xtr_accepts_it(tmp_path):
    plan = plan_of(150)
    daemons = lisp_daemons(FakeTb(), plan, str(tmp_path))
    xtrs = [d for d in daemons if d.program == "xtr"]
    assert xtrs[0].config["status_interval_s"] == 1.0
    assert xtrs[1].config["status_interval_s"] == pytest.approx(151 / STATUS_ASES)
    cfg = dict(xtrs[1].config)
    xtrs[1].render()  # the run directory's config/, logs/ and state/
    assert load(cfg)["status_interval_s"] == pytest.approx(1.51)
    with pytest.raises(ConfigError):
        load(dict(cfg, status_interval_s=0))


def test_clients_write_their_status_less_often_above_a_hundred_ases_too(tmp_path):
    """At 1,000 ASes the clients' status files, one per host each second, kept 703 clients in D state
    on the state directory's lock and lost most chunks (scale, j = 1,000): they follow the xTRs' rule."""
    from nodes.client import parse_config
    from testbed.measure import Network

    class Ctx:
        class run:
            path = str(tmp_path)

    for ases, every in ((4, 1.0), (150, 151 / STATUS_ASES)):
        net = Network.__new__(Network)
        net.plan, net.tb, net.ctx = plan_of(ases), FakeTb(), Ctx
        clients = net.client_daemons("t", 5000)
        assert clients and all(c.config["status_interval_s"] == pytest.approx(every) for c in clients)
    cfg = {"name": "c", "port": 5000, "bind": "0.0.0.0", "eids": ["10.1.0.10"]}
    assert parse_config(cfg).status_interval_s == 1.0
    assert parse_config(dict(cfg, status_interval_s=2.5)).status_interval_s == 2.5
    for bad in (0, -1, "x"):
        with pytest.raises(ConfigError):
            parse_config(dict(cfg, status_interval_s=bad))


def test_the_source_ases_itr_gets_a_larger_cpu_share_only_at_scale(tmp_path):
    """j = 1,000, k = 100,000: with 2,000 processes sharing two CPUs fairly, x0 (the ITR every chunk crosses)
    fell behind its service socket; above STATUS_ASES ASes it runs at ITR_NICE, and the xTR takes the key."""
    from testbed.net.lisp import ITR_NICE
    for ases, nice in ((4, None), (150, ITR_NICE)):
        xtrs = [d for d in lisp_daemons(FakeTb(), plan_of(ases), str(tmp_path)) if d.program == "xtr"]
        assert xtrs[0].config.get("nice") == nice
        assert all("nice" not in x.config for x in xtrs[1:])
    cfg = dict(xtrs[0].config)
    xtrs[0].render()  # the run directory's config/, logs/ and state/
    assert load(cfg)["nice"] == ITR_NICE
    for bad in (-21, 20, "x"):
        with pytest.raises(ConfigError, match="nice"):
            load(dict(cfg, nice=bad))


def test_status_writer_never_blocks_the_loop_on_a_stalled_directory(tmp_path, monkeypatch):
    """The ITR spent seconds in rename() on a state directory shared with 2,000 writers while its service socket
    overflowed: submit() returns at once even while a write is stuck, the latest status wins, close() writes
    the final one."""
    import json
    import threading
    import time

    from testbed import nodeutil
    gate = threading.Event()
    real = nodeutil.write_text_atomic
    written: list[str] = []

    def slow(path, text, fsync=False):
        gate.wait(30)  # the directory's lock held by someone else
        written.append(text)
        real(path, text, fsync)

    monkeypatch.setattr(nodeutil, "write_text_atomic", slow)
    path = str(tmp_path / "x0.status.json")
    w = nodeutil.StatusWriter(path)
    t0 = time.monotonic()
    for i in range(100):
        w.submit({"n": i})
    # 100 submits while the first write is stuck (fast: no write in this thread); a submit that waited for
    # the write would wait for the gate (30 s): 20 s tells them apart, with room for a loaded machine
    assert time.monotonic() - t0 < 20
    gate.set()
    deadline = time.monotonic() + 30
    while (not written or json.loads(written[-1])["n"] != 99) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(written[-1])["n"] == 99 and len(written) <= 3  # skipped the stale ones
    w.close({"n": "final"})
    assert json.loads(open(path).read()) == {"n": "final"}
    assert not w._thread.is_alive()


def test_status_writer_counts_a_removed_state_directory_and_never_raises(tmp_path):
    """The run's state directory removed mid-run (or unwritable): the thread's writes fail and are counted, and
    close()'s final write counts its failure too instead of raising out of the xTR's exit path (a traceback,
    exit 1, the 'stopped' line lost)."""
    import shutil
    import time

    from testbed import nodeutil
    state = tmp_path / "state"
    state.mkdir()
    w = nodeutil.StatusWriter(str(state / "x0.status.json"))
    w.submit({"n": 1})
    deadline = time.monotonic() + 30
    while not (state / "x0.status.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (state / "x0.status.json").exists() and w.errors == 0
    shutil.rmtree(state)
    w.submit({"n": 2})
    while w.errors < 1 and time.monotonic() < deadline + 30:
        time.sleep(0.01)
    assert w.errors == 1
    w.close({"n": "final"})  # raised FileNotFoundError
    assert w.errors == 2 and not w._thread.is_alive() and not state.exists()
