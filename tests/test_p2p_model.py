"""The P2P inter-domain model (testbed.p2p.model): shares, control, and against the simulator's swarm."""

from __future__ import annotations

import pytest

from testbed.p2p import model as M
from testbed.p2p.params import P2PParams
from testbed.p2p.sim import simulate

P = 1316
FAST = P2PParams(buffer_s=2.0, bm_period_s=0.2, sched_period_s=0.1, request_timeout_s=1.0)


def test_partner_shares_by_policy_and_join_order():
    # uniform sample of the other 29 peers: 20 of them are outside the AS
    assert M.partner_share([10, 10, 10], "random", join="uniform") == pytest.approx(20 / 29)
    # AS after AS: AS 1's peers only see each other; AS 2's see 10 outsiders out of 10..19, AS 3's 20 of 20..29
    cross = 4 * sum(10 / m for m in range(10, 20)) + 4 * sum(20 / m for m in range(20, 30))
    chosen = (1 + 2 + 3 + 4 * 6) + 4 * 20
    assert M.partner_share([10, 10, 10], "random") == pytest.approx(cross / chosen)
    assert M.partner_share([10, 10, 10], "random") == pytest.approx(0.5624, abs=1e-4)
    # local: 1 external of 4 partners; with 2 peers per AS only 1 local partner exists, 3 are external
    assert M.partner_share([10, 10, 10], "local") == pytest.approx(0.25)
    assert M.partner_share([2, 2, 2], "local") == pytest.approx(0.75)
    assert M.pull_share([10, 10, 10], "local") == pytest.approx(0.125)
    assert M.partner_share([5], "random") == 0.0 and M.partner_share([], "random") == 0.0


def test_external_copies_and_bytes_per_chunk():
    # 30 peers, 4 pushes + 26 pulls, 1/8 of them external under local: 7.25 copies of 88 + P, twice (star)
    assert M.external_share([10, 10, 10], "local") * 30 == pytest.approx(4 + 26 / 8)
    assert M.interdomain_bytes_per_chunk([10, 10, 10], "local", P) == pytest.approx((4 + 26 / 8) * (24 + P + 64) * 2)
    assert M.source_uplink_bytes_per_chunk([10, 10, 10], P) == 4 * (24 + P + 64)
    # 20 ASes, 4 pushes: 4 ASes get a chunk first-hand (1/8 of their pulls external), 16 from outside (1/2)
    assert M.pull_share([25] * 20, "local") == pytest.approx(0.2 / 8 + 0.8 / 2)
    assert M.external_share([25] * 20, "local") * 500 == pytest.approx(4 + 496 * 0.425)


def test_control_term_counts_buffer_maps_and_requests():
    rate, chunks, secs = 10.0, 60, 12.0
    got = M.control_bytes_per_chunk([10, 10, 10], "local", rate, chunks, secs, FAST)
    maps = 30 * 6 * 0.25 * secs / 0.2 / chunks           # 6 partners, a quarter outside the AS, every 0.2 s
    per_map = 16 + 4 + 64                                  # a map of 30 bits on average (60 chunks held at most)
    requests = 26 * 0.125 * (16 + 64)
    assert got == pytest.approx(maps * per_map + requests)
    with_ctrl = M.interdomain_bytes_per_chunk([10, 10, 10], "local", P, params=FAST, rate=rate, chunks=chunks,
                                              peer_seconds=secs)
    assert with_ctrl == pytest.approx(M.interdomain_bytes_per_chunk([10, 10, 10], "local", P, params=FAST)
                                      + 2 * got)


@pytest.mark.parametrize("gamma", [5, 10])
def test_local_below_random_and_model_near_the_simulated_swarm(gamma):
    """The same cores on a fake network, peers joining AS after AS as in the testbed: the chunk copies that
    cross ASes are within 20 % of the model for both policies, and local < random in both."""
    n = 3 * gamma
    order = sorted(range(n), key=lambda i: (i % 3, i))  # sim peer i is in AS 1 + i % 3
    join = [0.0] * n
    for k, i in enumerate(order):
        join[i] = 0.002 * k
    copies = {}
    for pol in ("random", "local"):
        prm = P2PParams(policy=pol, buffer_s=2.0, bm_period_s=0.2, sched_period_s=0.1, request_timeout_s=1.0)
        res = simulate(peers=n, ases=3, chunks=60, chunk_rate=9.5, params=prm, join_at=join)
        assert res.summary["continuity"] == 1.0
        measured = 4 + res.summary["xas_chunks"] / 60  # the source's pushes all cross ASes
        model = M.external_share([gamma] * 3, pol, 4, prm) * n
        assert model == pytest.approx(measured, rel=0.2), (pol, model, measured)
        copies[pol] = measured
    assert copies["local"] < copies["random"]
