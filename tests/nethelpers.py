"""Helpers for namespace tests: a LISP-enabled testbed as a context manager, status files, UDP probes."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator

from testbed.addressing import AddressPlan, make_plan
from testbed.net.network import Testbed
from testbed.params import topo_params

os.environ.setdefault("CORECAST_LOCK_WAIT", "1800")


@contextlib.contextmanager
def lisp_testbed(rundir: str, lisp: bool = True, **values: Any) -> Iterator[tuple[Testbed, AddressPlan]]:
    """The paper topology for ``values`` with the map-server and every xTR running (``lisp``), a tree core
    routed by FRR either way; torn down after."""
    from testbed.session import start_core_routing, start_lisp
    plan = make_plan(topo_params(values))
    tb = Testbed(plan, rundir)
    try:
        tb.start()
        start_core_routing(tb, plan, rundir)  # a tree core is routed (FRR) with or without LISP
        if lisp:
            start_lisp(tb, plan, rundir, values)
        yield tb, plan
    finally:
        tb.stop()


def status(rundir: str, name: str) -> dict:
    """A daemon's status file (counters), {} if not written yet."""
    try:
        with open(os.path.join(rundir, "state", f"{name}.status.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout``; return its last value.

    A deadline on state, not a speed claim: give it room for a loaded 2-core CI machine (status files
    are rewritten every second by daemons that the load may delay by seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        time.sleep(interval)


def send_udp(node: Any, dst: str, port: int, payload_hex: str, count: int = 1, src: str | None = None) -> str:
    """Send ``count`` UDP datagrams (hex payload) from inside ``node``."""
    bind = f"s.bind(('{src}',0));" if src else ""
    code = (f"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);{bind}"
            f"[s.sendto(bytes.fromhex('{payload_hex}'),('{dst}',{port})) for _ in range({count})];print('sent')")
    from testbed.net.nodecmd import run_in_node  # argv, not a shell line: any payload length, with a deadline
    return run_in_node(node, [sys.executable, "-c", code], timeout=60).stdout


def fresh_status(rundir: str, name: str, timeout: float = 30.0) -> dict:
    """A daemon's status written after this call (status files are rewritten every second)."""
    t = time.time()
    assert wait_for(lambda: status(rundir, name).get("time", 0) > t, timeout), f"{name} wrote no status"
    return status(rundir, name)
