"""Namespace test of the CoreCast ETR defence on a legitimate stream's start (issue 10, property c):
x1 has never resolved the source's EID, so its first REFs wait for the Map-Reply, then all are delivered."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from nethelpers import fresh_status, lisp_testbed, status, wait_for
from testbed.wire.corecast import chunk_hash, encode_data, encode_ref

pytestmark = pytest.mark.net


def send_all(node, dst: str, port: int, payloads: list[bytes], path: str) -> str:
    """Send the datagrams back to back from one process inside ``node`` (read from ``path``, one hex a line)."""
    with open(path, "w") as fh:
        fh.write("\n".join(p.hex() for p in payloads))
    code = (f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
            f"[s.sendto(bytes.fromhex(h),('{dst}',{port})) for h in open('{path}').read().split()];print('sent')")
    return node.cmd(f"{sys.executable} -c \"{code}\"")


def test_first_refs_wait_for_the_source_mapping_and_are_all_delivered(tmp_path):
    rundir = str(tmp_path)
    with lisp_testbed(rundir, ases=1, clients=3) as (tb, plan):
        a1 = plan.client_ases[0]
        src_eid = socket.inet_aton(plan.source_eid)
        clients = [socket.inet_aton(eid) for _host, eid in a1.clients]
        before = fresh_status(rundir, a1.xtr)
        assert before["map_cache_entries"] == 0  # x1 knows nothing of the source's site yet
        chunks = [bytes([i]) * 1316 for i in (1, 2)]
        msgs = []
        for seq, chunk in enumerate(chunks):
            msgs.append(encode_data(7, seq, chunk))
            msgs += [encode_ref(7, seq, chunk_hash(chunk), src_eid, c, 5000, 6000) for c in clients]
        assert "sent" in send_all(tb.node(plan.source_host), plan.service_addr, 4340, msgs,
                                 os.path.join(rundir, "msgs.hex"))
        want = 2 * len(clients)
        assert wait_for(lambda: status(rundir, a1.xtr).get("corecast_etr", {}).get("delivered", 0) >= want, 30)
        after = fresh_status(rundir, a1.xtr)
        cc = after["corecast_etr"]
        assert cc["delivered"] == want and cc["cc-ref-queued"] >= 1 and cc["cc-ref-flushed"] == cc["cc-ref-queued"]
        assert cc["cc-unknown-itr"] == cc["cc-source-mismatch"] == cc["hash-mismatch"] == cc["no-chunk"] == 0
        assert cc["cc-promoted"] >= 1 and after["corecast_defence"] is True
        assert after["io"]["tun-write"] - before["io"]["tun-write"] == want
        assert after["control"].get("request-sent", 0) >= 1  # the Map-Request for the source's EID
