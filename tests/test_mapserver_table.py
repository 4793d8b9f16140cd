"""The Map-Server's persisted rows (testbed.lisp.mapserver_table): round trip, and every malformed row a
counted ``restore-invalid``, never an exception (a hand-edited table file used to crash the map-server)."""

from __future__ import annotations

import copy

import pytest

from testbed.lisp import mapserver
from testbed.lisp.mapserver import MapServer, Site
from testbed.lisp.mapserver_table import Registration, registration_row
from testbed.wire import lispctrl as lc


def _server() -> MapServer:
    return MapServer([Site("as1", b"k", ["10.1.0.0/16"])], expiry=100.0)


def _row() -> dict:
    ms = _server()
    reg = lc.MapRegister(0x1234, [lc.EidRecord("10.1.0.0/16", ttl=60, locators=[
        lc.Locator("198.51.100.1", corecast=True)])], xtr_id=7, site_id=3)
    ms.on_message(reg.encode(b"k"), "198.51.100.1", 4342, 10.0)
    row, = ms.table()
    return row


def test_row_round_trip_keeps_every_field():
    row = _row()
    assert row["last_nonce"] == "0x0000000000001234" and row["xtr_id"] == f"{7:032x}" and row["site_id"] == f"{3:016x}"
    assert row["rlocs"][0]["corecast"] is True and row["expires_at"] == 110.0 and row["registered_at"] == 10.0
    ms = _server()
    assert ms.restore([row], 20.0) == 1 and ms.table() == [row]
    assert mapserver.Registration is Registration  # still importable where it was


@pytest.mark.parametrize("change", [
    {"registered_at": "yesterday"},      # used to raise ValueError out of restore()
    {"refreshed_at": [1]},               # used to raise TypeError
    {"last_nonce": "0xzz"},              # used to raise ValueError
    {"registered_at": float("nan")},
    {"last_nonce": "0x" + "f" * 17},     # 68 bits: a nonce is 64
    {"last_nonce": "-0x1"},
    {"xtr_id": "f" * 33},                # 132 bits: an xTR-ID is 128
    {"site_id": "0x" + "f" * 17},        # a site-ID is 64 bits
    {"ttl_min": 10 ** 30},
    {"ttl_min": 0},
    {"map_version": 10 ** 9},
    {"rlocs": 5},
    {"rlocs": ["x"]},
    {"rlocs": []},
    {"prefix": 5},
    {"prefix": "10.2.0.0/16"},           # not the site's
    {"site": "as9"},
    {"expires_at": float("inf")},
])
def test_malformed_row_is_counted_invalid_never_raised(change):
    row = {**_row(), **change}
    ms = _server()
    assert ms.restore([row], 20.0) == 0
    assert ms.counters["restore-invalid"] == 1 and ms.table() == [] and len(ms) == 0


@pytest.mark.parametrize("field,value", [("priority", 300), ("rloc", "not-an-ip"), ("rloc", "2001:db8::1"),
                                         ("weight", "heavy")])
def test_malformed_locator_is_counted_invalid(field, value):
    row = copy.deepcopy(_row())
    row["rlocs"][0][field] = value
    ms = _server()
    assert ms.restore([row], 20.0) == 0 and ms.counters["restore-invalid"] == 1


def test_row_of_a_registration_without_xtr_id():
    reg = Registration("as1", 0x0A010000, 16, lc.EidRecord("10.1.0.0/16", ttl=5), 1.0, 2.0, 3.0, 0, "src")
    row = registration_row(reg)
    assert row["xtr_id"] is None and row["prefix"] == "10.1.0.0/16" and row["rlocs"] == []
    assert row["last_nonce"] == "0x0000000000000000" and row["site_id"] == "0" * 16
