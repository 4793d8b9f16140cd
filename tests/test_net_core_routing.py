"""Namespace test: a tree core is routed by FRR with or without LISP (issue 12 gap).

``corecast check --no-lisp --set core=tree`` used to leave FRR unstarted (routing was
started inside ``start_lisp``), so the border routers could not reach each other and
the check failed. Routing now starts whenever the core is a tree
(:func:`testbed.session.start_core_routing`, idempotent), and the check reports FRR's
own view (adjacencies Full, every RLOC subnet routed) as a row of its table.
"""

from __future__ import annotations

import json

import pytest

from conftest import corecast, leftovers

pytestmark = pytest.mark.net

LOCKED = 2400
"""Seconds a CLI call may take: up to CORECAST_LOCK_WAIT (1800 s) waiting for another network, then its work."""

SETS = ("--set", "core=tree", "--set", "transit=2", "--set", "ases=3", "--set", "clients=1")


def test_check_without_lisp_routes_a_tree_core(tmp_path):
    res = corecast("check", "--no-lisp", *SETS, "--out", str(tmp_path / "run"), timeout=LOCKED)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "core routed: FRR (OSPF) on 3 core routers" in out
    assert "ok   tree core routed by FRR (OSPF Full, every RLOC subnet)" in out and "3/3 reached" in out
    # 4 border routers: x0 pings the 3 others and the mapping host, each other one x0, the ms and 2 neighbours
    assert "ok   border routers reach the mapping host and each other (RLOC)" in out
    assert "ok   EIDs of other ASes unreachable without LISP" in out and "0/3 reached (want 0)" in out
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["summary"]["passed"] is True
    assert "router ospf" in (tmp_path / "run" / "config" / "frr" / "t1" / "ospfd.conf").read_text()
    assert leftovers() == ([], [])


def test_check_with_lisp_on_a_tree_core_starts_frr_once(tmp_path):
    res = corecast("check", *SETS, "--out", str(tmp_path / "run"), timeout=LOCKED)
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    assert "ok   tree core routed by FRR (OSPF Full, every RLOC subnet)" in out
    assert "EIDs of other ASes reachable through LISP (ping)" in out and "check passed" in out
    assert out.count("core routed: FRR") == 1
    logs = sorted(p.name for p in (tmp_path / "run" / "logs").glob("*-ospfd.log"))
    assert logs == ["core-ospfd.log", "t1-ospfd.log", "t2-ospfd.log"]  # one ospfd per router, not two
    assert leftovers() == ([], [])
