"""The models of corecast-batch and corecast-src (issue 15): bytes and packets per chunk, by hand."""

import pytest

from testbed.model import (core_bytes_per_chunk, core_packets_per_chunk, source_as_bytes_per_chunk,
                           source_as_packets_per_chunk)
from testbed.modemodels import MODELS, ref_lists
from testbed.modes import MODES
from testbed.wire.corecast import ref_list_capacity

P = 1316


def test_capacity_matches_the_wire():
    assert MODELS["corecast-batch"].as_packets(238, True) == 2 and ref_list_capacity() == 238
    assert [ref_lists(n) for n in (0, 1, 238, 239, 476, 477)] == [0, 1, 1, 2, 2, 3]
    assert MODES["corecast-batch"].model is MODELS["corecast-batch"]


@pytest.mark.parametrize("mode", ["corecast-batch", "corecast-src"])
def test_core_bytes_by_hand(mode):
    # 10 consecutive EIDs on one port: a REF-MAP of 40 + 2 bytes (a REF-LIST would be 32 + 60)
    assert core_bytes_per_chunk(mode, [10] * 4, None, P) == 4 * ((48 + P) + 36 + 40 + 2)
    # 300 clients: .1-.238 of the first /24 (238 bits), then .239-.250 and .1-.50 of the next (68 bits)
    assert core_bytes_per_chunk(mode, [300], None, P) == (48 + P) + 2 * 36 + (40 + 30) + (40 + 9)
    # one client: the REF-LIST (38 bytes) is shorter than a REF-MAP (41)
    assert core_bytes_per_chunk(mode, [1, 3], [True, False], P) == (48 + P) + 36 + 32 + 6 + 3 * (64 + P)
    assert core_packets_per_chunk(mode, [2, 3, 0], [True, False, True]) == 2 + 3


def test_source_as_bytes_by_hand():
    assert source_as_bytes_per_chunk("corecast-batch", [10] * 4, None, P) == (40 + P) + 40 * 60
    assert source_as_bytes_per_chunk("corecast-src", [10] * 4, None, P) == (40 + P) + 4 * (28 + 40 + 2)
    assert source_as_bytes_per_chunk("corecast-src", [2, 3], [True, False], P) == (40 + P) + 28 + 41 + 3 * (28 + P)
    assert source_as_packets_per_chunk("corecast-src", [2, 3], [True, False]) == 1 + 1 + 3
    assert source_as_packets_per_chunk("corecast-batch", [2, 3], [True, False]) == 1 + 5


def test_floor_ratio_at_gamma_10_and_100():
    """corecast-src's source uplink against j(48+P): within the issue's 1.10x at gamma 10 and 100 with REF-MAPs
    (36 + 40 + ceil(gamma / 8) bytes per ETR; 6-byte REF-LIST entries gave 1.094 and 1.490, docs/model.md)."""
    j = 10
    floor = j * (48 + P)
    assert core_bytes_per_chunk("corecast-src", [10] * j, None, P) / floor == pytest.approx(1.0572, abs=1e-4)
    assert core_bytes_per_chunk("corecast-src", [100] * j, None, P) / floor == pytest.approx(1.0652, abs=1e-4)
