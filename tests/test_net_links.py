"""Namespace test of issue 12 item 1: every inter-domain link measured, equal to the model to the byte.

One ``corecast run smoke`` on 3 client ASes (AS 2 not CoreCast-capable, AS 3 without
clients), both modes in the order the ``modes`` parameter gives, with ``--keep-pcap``
so that every link's counters are cross-checked by captures of both directions.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import corecast, leftovers

pytestmark = pytest.mark.net

CHUNKS = 120
P = 1316


def expected_links(mode: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(bytes, packets) per (link, direction) for the whole stream, from DESIGN section 3's sizes by hand."""
    # AS1: 4 clients, capable; AS2: 2 clients, not capable; AS3: no clients
    if mode == "unicast":
        as1, as2 = (4 * (64 + P), 4), (2 * (64 + P), 2)
    else:
        as1, as2 = ((48 + P) + 4 * 68, 5), (2 * (64 + P), 2)
    per = {("x0-core", "up"): (as1[0] + as2[0], as1[1] + as2[1]), ("x1-core", "down"): as1, ("x2-core", "down"): as2}
    out = {}
    for link in ("x0-core", "x1-core", "x2-core", "x3-core"):
        for d in ("up", "down"):
            b, n = per.get((link, d), (0, 0))
            out[(link, d)] = (CHUNKS * b, CHUNKS * n)
    return out


def test_every_interdomain_link_equals_the_model_to_the_byte(tmp_path):
    out = tmp_path / "links"
    res = corecast("run", "smoke", "--out", str(out), "--keep-pcap", "--set", "ases=3", "--set", "clients=4,2,0",
                   "--set", "capable=1,3", "--set", f"chunks={CHUNKS}", "--set", "modes=corecast,unicast",
                   timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    m = pd.read_csv(out / "measurements.csv")
    assert list(m["mode"]) == ["corecast", "unicast"]
    links = pd.read_csv(out / "links.csv")
    assert len(links) == 2 * 4 * 2 and "ms" not in set(links["node"])
    for mode in ("corecast", "unicast"):
        rows = links[links["mode"] == mode]
        want = expected_links(mode)
        got = {(r.link, r.direction): (r.bytes, r.packets) for r in rows.itertuples()}
        assert got == want, mode
        assert (rows["bytes"] == rows["model_bytes"]).all()
        assert (rows["capture_bytes"] == rows["bytes"]).all() and (rows["capture_packets"] == rows["packets"]).all()
        assert set(rows["interface"]) == {"x0-eth1", "x1-eth1", "x2-eth1", "x3-eth1"}
        row = m[m["mode"] == mode].iloc[0]
        uplink = want[("x0-core", "up")][0]
        assert row.core_bytes == row.model_core_bytes == uplink
        assert row.interdomain_bytes == row.model_interdomain_bytes == 2 * uplink == sum(b for b, _ in want.values())
        assert row.max_link_bytes == row.model_max_link_bytes == uplink
        assert row.links_capture_mismatches == 0 and row.links_capture_dropped == 0
        assert row.delivered_chunks == row.expected_chunks == CHUNKS * 6
    assert leftovers() == ([], [])


def test_tree_core_routed_by_frr_every_link_equals_the_model(tmp_path):
    """core=tree, transit=2: AS1 and AS3 (empty) behind t1, AS2 behind t2; OSPF by FRR; core-core links measured."""
    import glob
    chunks = 100
    out = tmp_path / "tree"
    res = corecast("run", "smoke", "--out", str(out), "--keep-pcap", "--set", "ases=3", "--set", "clients=2,1,0",
                   "--set", "core=tree", "--set", "transit=2", "--set", f"chunks={chunks}", timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    frr_state = json.loads((out / "state" / "frr.json").read_text())
    assert frr_state["routers"] == ["core", "t1", "t2"] and frr_state["converged_s"] < 30
    assert "router ospf" in (out / "config" / "frr" / "t2" / "ospfd.conf").read_text()
    links = pd.read_csv(out / "links.csv")
    per_chunk = {  # (bytes, packets) per chunk on the links that carry data, both modes
        "unicast": {("x0-core", "up"): (3 * 1380, 3), ("t1-core", "down"): (2 * 1380, 2),
                    ("t2-core", "down"): (1380, 1), ("x1-t1", "down"): (2 * 1380, 2), ("x2-t2", "down"): (1380, 1)},
        "corecast": {("x0-core", "up"): (1364 + 136 + 1364 + 68, 5), ("t1-core", "down"): (1364 + 136, 3),
                     ("t2-core", "down"): (1364 + 68, 2), ("x1-t1", "down"): (1364 + 136, 3),
                     ("x2-t2", "down"): (1364 + 68, 2)},
    }
    for mode, want in per_chunk.items():
        rows = links[links["mode"] == mode]
        assert set(rows["link"]) == {"x0-core", "x1-t1", "x2-t2", "x3-t1", "t1-core", "t2-core"}
        got = {(r.link, r.direction): (r.bytes, r.packets) for r in rows.itertuples()}
        expect = {key: (chunks * want.get(key, (0, 0))[0], chunks * want.get(key, (0, 0))[1]) for key in got}
        assert got == expect, mode
        assert (rows["bytes"] == rows["model_bytes"]).all() and (rows["capture_bytes"] == rows["bytes"]).all()
    m = pd.read_csv(out / "measurements.csv").set_index("mode")
    for mode in ("unicast", "corecast"):
        row = m.loc[mode]
        assert row.interdomain_bytes == row.model_interdomain_bytes == 3 * row.core_bytes
        assert row.max_link_bytes == row.core_bytes == row.model_core_bytes
        assert row.delivered_chunks == row.expected_chunks == chunks * 3
    assert leftovers() == ([], [])
    assert not glob.glob("/tmp/corecast-frr-*")
