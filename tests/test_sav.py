"""Source address validation (testbed/net/sav.py): the rule set nft accepts, counter parsing, router list."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from testbed.addressing import make_plan
from testbed.net import sav
from testbed.params import topo_params

NFT_JSON = ('{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"counter": {"family": "inet", "name": "sav", '
            '"table": "cc_sav", "handle": 2, "packets": 7, "bytes": 9464}}]}')


def test_parse_counter_reads_packets_and_bytes():
    assert sav.parse_counter(NFT_JSON) == (7, 9464)


@pytest.mark.parametrize("text", ["", "not json", '{"nftables": []}', '{"nftables": [{"counter": {"name": "sav"}}]}',
                                  '{"x": 1}'])
def test_parse_counter_bad_output_is_one_error(text):
    with pytest.raises(sav.SavError):
        sav.parse_counter(text)


def test_routers_are_every_xtr_and_the_core():
    plan = make_plan(topo_params({"ases": 3, "clients": 1}))
    assert sav.routers(plan) == ["x0", "x1", "x2", "x3", "core"]


def test_ruleset_is_accepted_by_nft_and_counts_from_zero():
    if shutil.which("nft") is None or shutil.which("unshare") is None:
        pytest.fail("nft and unshare are installed by scripts/setup.sh")
    res = subprocess.run(["unshare", "-n", "sh", "-c", f"nft -f - && nft -j list counter inet {sav.TABLE} {sav.COUNTER}"],
                         input=sav.RULESET, capture_output=True, text=True, timeout=20)
    if res.returncode and "Operation not permitted" in res.stderr:
        pytest.skip("needs root (unshare -n)")
    assert res.returncode == 0, res.stderr
    assert sav.parse_counter(res.stdout) == (0, 0)
