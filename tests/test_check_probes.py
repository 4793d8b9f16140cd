"""The check's patient probe (PROBE_UNTIL_SH) and its deadlines that grow with the number of targets."""

from __future__ import annotations

import subprocess

from testbed.net.check import PATIENCE, PATIENCE_PER_TARGET, PROBE_UNTIL_SH, _probe_deadline, ping_all
from testbed.net.nodecmd import run_in_node


class LocalNode:
    """Stands in for a Mininet node: popen in this namespace, in a new session like ``mnexec -d``."""

    name = "local"

    def popen(self, argv, **kw):
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(argv, **kw)


def test_patient_probe_reports_reached_and_unreached():
    res = ping_all([(LocalNode(), ["127.0.0.1"]), (LocalNode(), ["198.51.100.77"])], patience=2)
    assert res == [{"127.0.0.1": True}, {"198.51.100.77": False}]


def test_patient_probe_takes_a_thousand_targets_as_arguments():
    targets = [f"127.0.{i // 250}.{1 + i % 250}" for i in range(1000)]
    fake = PROBE_UNTIL_SH.replace("ping -n -q", "true")  # the probe's shape, without 1,000 pings
    res = run_in_node(LocalNode(), ["sh", "-c", fake, "probe", "30", *targets], timeout=120)
    lines = [ln for ln in res.stdout.split("\n") if ln]
    assert sorted(ln.split()[1] for ln in lines) == sorted(targets)
    assert all(ln.startswith("OK ") for ln in lines)


def test_deadlines_grow_with_the_targets():
    assert _probe_deadline(1, 1.0, 1000) - _probe_deadline(1, 1.0, 1) > 40
    assert PATIENCE + PATIENCE_PER_TARGET * 1000 >= 30  # 1,000 first packets wait for Map-Replies on 2 cores


def test_parallel_one_runs_the_probes_one_after_the_other(tmp_path):
    """parallel=1 (the cross-AS waves): a probe starts only once the previous one ended."""
    log = tmp_path / "order"

    class Node(LocalNode):
        def popen(self, argv, **kw):
            target = argv[-1]
            argv = ["sh", "-c", f'echo start {target} >> {log}; sleep 0.2; echo end {target} >> {log}; '
                                f'echo "OK {target}"']
            return super().popen(argv, **kw)

    res = ping_all([(Node(), ["a"]), (Node(), ["b"]), (Node(), ["c"])], patience=5, parallel=1)
    assert res == [{"a": True}, {"b": True}, {"c": True}]
    assert log.read_text().split("\n")[:-1] == ["start a", "end a", "start b", "end b", "start c", "end c"]
