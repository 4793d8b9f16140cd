"""Namespace tests of issue 15's modes: corecast-batch and corecast-src deliver every chunk to every client
byte for byte through real xTRs, and the core bytes measured equal the model to the byte."""

from __future__ import annotations

import pytest

from test_net_corecast import run_smoke

pytestmark = pytest.mark.net
P = 1316
NEW = "modes=corecast-batch,corecast-src"


def _exact(df, chunks: int, k: int) -> None:
    for mode in ("corecast-batch", "corecast-src"):
        row = df.loc[mode]
        assert row.delivered_chunks == row.expected_chunks == chunks * k, mode
        assert row.corrupt_chunks == 0 and bool(row.all_exact), mode
        assert row.core_bytes == row.model_core_bytes, mode


def test_default_topology_gamma10(tmp_path):
    df = run_smoke(tmp_path, "default", "ases=4", "clients=10", "chunks=40", "speed=10", NEW)
    _exact(df, 40, 40)
    for mode in ("corecast-batch", "corecast-src"):  # one DATA and one 10-bit REF-MAP per ETR per chunk
        assert df.loc[mode, "core_bytes"] == 40 * 4 * ((48 + P) + 36 + 40 + 2)
        assert df.loc[mode, "core_packets"] == 40 * 4 * 2


def test_mixed_deployment_gamma1(tmp_path):
    df = run_smoke(tmp_path, "mixed", "ases=4", "clients=1", "capable=1,3", "chunks=40", "speed=10", NEW)
    _exact(df, 40, 4)
    for mode in ("corecast-batch", "corecast-src"):  # ASes 2 and 4 are not capable: unicast
        # one client per ETR: a 1-entry REF-LIST (38 bytes) is shorter than a REF-MAP (41)
        assert df.loc[mode, "core_bytes"] == 40 * (2 * ((48 + P) + 68 + 6) + 2 * (64 + P))
        assert df.loc[mode, "unicast_packets"] == 40 * 2


def test_gamma100(tmp_path):
    df = run_smoke(tmp_path, "gamma100", "ases=1", "clients=100", "chunks=20", "speed=10", NEW)
    _exact(df, 20, 100)
    for mode in ("corecast-batch", "corecast-src"):
        assert df.loc[mode, "core_bytes"] == 20 * ((48 + P) + 36 + 40 + 13)  # a 100-bit REF-MAP per chunk
