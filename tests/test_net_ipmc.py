"""Namespace tests of mode ipmc (issue 12 item 3): native PIM-SSM by FRR's pimd on every router.

On the star core and on a tree core: every chunk reaches every client byte for byte,
and each inter-domain link carries exactly the model's bytes (one 28 + P copy per link
of the distribution tree, counted by the links' nft counters). And FRR's own view
(``vtysh -c 'show ip mroute'``) in the routers holds the group's (S, G) state.
"""

from __future__ import annotations

import json
import os
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import corecast, leftovers
from nethelpers import lisp_testbed, wait_for

pytestmark = pytest.mark.net

P = 1316
COPY = 28 + P  # IPv4 20 + UDP 8 + payload: one native multicast copy
GROUP = "232.2.2.2"


def _run(out, chunks: int, *sets: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    res = corecast("run", "smoke", "--out", str(out), "--set", "ases=3", "--set", "clients=2,1,0",
                   "--set", f"chunks={chunks}", "--set", "modes=ipmc", *sets, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    return pd.read_csv(out / "measurements.csv"), pd.read_csv(out / "links.csv")


def _check(m: pd.DataFrame, links: pd.DataFrame, chunks: int, tree_links: set[tuple[str, str]]) -> None:
    row = m.iloc[0]
    assert row["mode"] == "ipmc"
    assert row.delivered_chunks == row.expected_chunks == 3 * chunks and row.corrupt_chunks == 0
    assert bool(row.all_exact)
    got = {(r.link, r.direction): (r.bytes, r.packets, r.model_bytes) for r in links.itertuples()}
    want = {key: (chunks * COPY, chunks, chunks * COPY) if key in tree_links else (0, 0, 0) for key in got}
    assert got == want
    assert row.core_bytes == row.model_core_bytes == chunks * COPY
    assert row.interdomain_bytes == row.model_interdomain_bytes == len(tree_links) * chunks * COPY
    assert row.max_link_bytes == row.model_max_link_bytes == chunks * COPY
    assert row.links_capture_mismatches == 0


def test_ipmc_star_every_client_every_chunk_links_equal_the_model(tmp_path):
    """Star: AS1 (2 clients) and AS2 (1) behind the core, AS3 without clients: 3 links carry one copy each."""
    chunks = 80
    m, links = _run(tmp_path / "star", chunks)
    _check(m, links, chunks, {("x0-core", "up"), ("x1-core", "down"), ("x2-core", "down")})
    pim = json.loads((tmp_path / "star" / "state" / "pim.json").read_text())
    assert pim["routers"] == ["x0", "x1", "x2", "x3", "core"] and pim["group"] == GROUP
    conf = (tmp_path / "star" / "config" / "frr" / "x1" / "pimd.conf").read_text()
    assert "interface x1-eth0\n ip pim" in conf and " ip igmp version 3" in conf
    assert leftovers() == ([], [])


def test_ipmc_tree_core_every_client_every_chunk_links_equal_the_model(tmp_path):
    """Tree, 2 transit routers: AS1 and AS3 (no clients) behind t1, AS2 behind t2: one copy down each branch.

    With ``--keep-pcap`` every link's counters are cross-checked by captures of both directions, on both
    kinds of inter-domain link (border-transit and transit-root): the captures filter and count ipmc's
    native multicast as the counters do (they used to see only LISP and report every link as a mismatch).
    """
    chunks = 80
    m, links = _run(tmp_path / "tree", chunks, "--set", "core=tree", "--set", "transit=2", "--keep-pcap")
    _check(m, links, chunks, {("x0-core", "up"), ("t1-core", "down"), ("t2-core", "down"),
                              ("x1-t1", "down"), ("x2-t2", "down")})
    assert (links["capture_bytes"] == links["bytes"]).all() and (links["capture_packets"] == links["packets"]).all()
    assert links["capture_bytes"].sum() == 5 * chunks * COPY  # the captures saw the multicast copies
    assert m.iloc[0].links_capture_dropped == 0 and m.iloc[0].capture_dropped == 0
    pcaps = {p.name for p in (tmp_path / "tree" / "pcap").iterdir()}
    assert any("t1-core-down" in n for n in pcaps) and any("x0-core-up" in n for n in pcaps)
    assert leftovers() == ([], [])


RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 6000))
s.setsockopt(socket.IPPROTO_IP, 39, socket.inet_aton(sys.argv[1]) + socket.inet_aton(sys.argv[2])
             + socket.inet_aton(sys.argv[3]))  # struct ip_mreq_source: group, interface, source
print("joined", flush=True)
time.sleep(60)
"""


def test_ipmc_frr_shows_the_groups_state(tmp_path):
    """What ``corecast cli paper --set core=tree --set modes=ipmc`` starts; FRR's mroute and upstream hold (S, G)."""
    from testbed.modes import IpmcMode
    from testbed.net.frr import vtysh
    from testbed.net.pim import joined, wait_joined
    rundir = str(tmp_path)
    with lisp_testbed(rundir, ases=2, clients="1,1", core="tree", transit=2) as (tb, plan):
        mode = IpmcMode(SimpleNamespace(tb=tb, plan=plan, rundir=rundir, link_counters=None))
        mode.start()
        assert set(mode.sockdirs) == {"x0", "x1", "x2", "core", "t1", "t2"}
        assert "Full" in vtysh(mode.sockdirs["core"], "show ip ospf neighbor")  # OSPF's zebra shared by pimd
        recvs = []
        try:
            for a in plan.client_ases:
                host, eid = a.clients[0]
                recvs.append(tb.node(host).popen([sys.executable, "-c", RECEIVER, GROUP, eid, plan.source_eid]))
            wait_joined(plan, mode.sockdirs, timeout=60)  # (20 s by default: a loaded machine's PIM may lag)
            text = vtysh(mode.sockdirs["x1"], "show ip igmp sources")
            assert GROUP in text and plan.source_eid in text
            for router in ("core", "t1", "t2"):
                assert joined(vtysh(mode.sockdirs[router], "show ip pim upstream json"), plan.source_eid)
            sender = (f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
                      f"s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_TTL,64);"
                      f"[s.sendto(b'x'*100,('{GROUP}',6000)) for _ in range(3)]")
            from testbed.net.nodecmd import run_in_node

            def sg_line(text: str) -> str:
                return next((x for x in text.splitlines() if plan.source_eid in x and GROUP in x), "")

            def settled() -> bool:
                """Send 3 datagrams; True once the core's mroute has the (S, G) with both branches (pimd
                handles the kernel's upcall asynchronously: later on a loaded machine)."""
                run_in_node(tb.node(plan.source_host), [sys.executable, "-c", sender], timeout=30)
                text = vtysh(mode.sockdirs["core"], "show ip mroute")
                return "core-eth1" in sg_line(text) and "core-t1" in text and "core-t2" in text
            wait_for(settled, 60, 0.5)  # the asserts below say what is missing if it never settles
            mroute = vtysh(mode.sockdirs["core"], "show ip mroute")
            line = sg_line(mroute)
            assert line, mroute
            assert "core-eth1" in line  # the incoming interface: towards the source AS
            assert "core-t1" in mroute and "core-t2" in mroute  # both branches in the outgoing list
        finally:
            for p in recvs:
                p.kill()
                p.wait(5)
    assert os.path.exists(os.path.join(rundir, "config", "frr", "t1", "pimd.conf"))
