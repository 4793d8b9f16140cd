"""Namespace tests of the LISP control plane (issue 11 item 6, issue 10 items 4 and 5).

RLOC-probe of an xTR from the mapping host; a forged but correctly signed
Map-Register (locator outside the RLOC block, TTL over the cap) rejected with
no Map-Notify; a lookup right after the Map-Server restarts gets a positive
reply (the table came back from its file, not from the xTRs: they register
only every 300 s here).
"""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from nethelpers import fresh_status, lisp_testbed, status, wait_for
from testbed.wire import lispctrl as lc

pytestmark = pytest.mark.net

SENDER = textwrap.dedent("""\
    import socket, sys
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 0))
    s.settimeout(float(sys.argv[4]))  # seconds
    s.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[2], 4342))
    try:
        print("GOT", s.recvfrom(65535)[0].hex())
    except socket.timeout:
        print("NOTHING")
""")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """2 client ASes, one client each; xTRs register every 300 s (so only the table file can refill a restart)."""
    rundir = str(tmp_path_factory.mktemp("ctl"))
    script = os.path.join(rundir, "send_register.py")
    with open(script, "w") as fh:
        fh.write(SENDER)
    with lisp_testbed(rundir, ases=2, clients=1, register_interval=300.0, expiry=900.0) as (tb, plan):
        yield tb, plan, rundir, script


def _ms(tb):
    return next(d for d in tb.daemons if d.name == "ms")


def test_rloc_probe_from_the_mapping_host(net):
    tb, plan, rundir, _ = net
    a1 = plan.client_ases[0]
    before = fresh_status(rundir, a1.xtr)["control"].get("probe-reply-sent", 0)
    out = tb.node(plan.ms).cmd(f"{sys.executable} -m testbed lig --probe {a1.rloc} --timeout 15")
    assert f"Received map-reply (RLOC-probe) from {a1.rloc}:4342 with rtt" in out, out
    assert f"{a1.eid_prefix}, via map-reply" in out and a1.rloc in out and " ms" in out, out
    assert wait_for(lambda: status(rundir, a1.xtr)["control"].get("probe-reply-sent", 0) == before + 1, 30)


def _forged(tb, plan, rundir, script, rloc: str, ttl: int, nonce: int, wait: float = 1.5) -> str:
    """A Map-Register for AS 1's prefix signed with AS 1's real key, sent from x1's RLOC; returns the output
    (a Map-Notify waited for ``wait`` s)."""
    a1 = plan.client_ases[0]
    key = next(s["key"] for s in _ms(tb).config["sites"] if s["name"] == f"as{a1.number}")
    rec = lc.EidRecord(a1.eid_prefix.replace(".0.0/16", ".1.0/24"), ttl=ttl, locators=[lc.Locator(rloc)])
    raw = lc.MapRegister(nonce, [rec], want_map_notify=True).encode(key.encode())
    return tb.node(a1.xtr).cmd(f"{sys.executable} {script} {a1.rloc} {plan.ms_ip} {raw.hex()} {wait:g}")


def test_forged_register_outside_rloc_space_or_ttl_over_cap_rejected(net):
    tb, plan, rundir, script = net
    before = fresh_status(rundir, "ms")["counters"]
    out = _forged(tb, plan, rundir, script, "174.16.1.2", 1440, 0x1001)   # locator outside 172.16.0.0/12
    assert "NOTHING" in out, out
    out = _forged(tb, plan, rundir, script, plan.client_ases[0].rloc, 67_110_304, 0x1002)  # 127 years
    assert "NOTHING" in out, out
    assert wait_for(lambda: status(rundir, "ms")["counters"].get("register-rloc-outside", 0)
                    == before.get("register-rloc-outside", 0) + 1, 30)
    after = fresh_status(rundir, "ms")["counters"]
    assert after.get("register-ttl-too-long", 0) == before.get("register-ttl-too-long", 0) + 1
    assert after.get("notify-sent", 0) == before.get("notify-sent", 0)
    # the same key and RLOC inside the block and a sane TTL are accepted: the rejection was the content
    out = _forged(tb, plan, rundir, script, plan.client_ases[0].rloc, 60, 0x1003, wait=30)  # a reply: ends early
    assert "GOT 4" in out, out


def test_lookup_right_after_map_server_restart_is_positive(net):
    tb, plan, rundir, _ = net
    a2 = plan.client_ases[1]
    ms = _ms(tb)
    ms.stop()
    ms.start()
    ms.wait_ready(60)
    out = tb.node("x1").cmd(f"{sys.executable} -m testbed lig {a2.clients[0][1]} --resolver {plan.ms_ip} --timeout 15")
    assert f"{a2.eid_prefix}, via map-reply" in out and a2.rloc in out, out
    counters = fresh_status(rundir, "ms")["counters"]
    assert counters.get("restore-loaded", 0) >= len(plan.all_ases)
    assert counters.get("register-ok", 0) == 0  # nobody re-registered: the answer came from the restored table
