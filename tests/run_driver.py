"""A small testbed run for namespace tests of the life cycle (not a test module itself).

``python tests/run_driver.py RUNDIR MODE [--lisp] [--lock-fd FD]``

* ``hold``: bring the network up (with ``--lisp`` the map-server and xTRs too), print one
  JSON line (``pid``, ``run_id``, ``pids`` of its node shells and daemons), then wait.
* ``pending``: bring it up, print ``pending``, then run ``sleep 60`` in x0's shell.

SIGINT or SIGTERM: the run tears down, is marked incomplete, exit 130 (like ``corecast``).
``--lock-fd``: use an inherited, already taken testbed lock (the test holds it).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _sigterm(_signum, _frame):
    raise KeyboardInterrupt("SIGTERM")


def main() -> int:
    from testbed.addressing import make_plan
    from testbed.net import registry
    from testbed.net.network import Testbed
    from testbed.params import topo_params
    from testbed.results import RunDir
    rundir, mode = sys.argv[1], sys.argv[2]
    if "--lock-fd" in sys.argv:
        registry._lock_fd = int(sys.argv[sys.argv.index("--lock-fd") + 1])
    signal.signal(signal.SIGTERM, _sigterm)
    values = {"ases": 1, "clients": 1}
    plan = make_plan(topo_params(values))
    run = RunDir.create("driver", values, out=rundir)
    try:
        with run:
            with Testbed(plan, run.path) as tb:
                if "--lisp" in sys.argv:
                    from testbed.session import start_lisp
                    start_lisp(tb, plan, run.path, values)
                if mode == "pending":
                    print("pending", flush=True)
                    tb.node("x0").cmd("sleep 60")
                    return 1
                pids = [n.pid for n in tb.net.hosts] + [d.proc.pid for d in tb.daemons]
                print(json.dumps({"pid": os.getpid(), "run_id": registry.run_id(), "pids": pids}), flush=True)
                time.sleep(600)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
