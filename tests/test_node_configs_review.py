"""Bad node configs a review found after the schemas landed: one line naming the problem, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

SITE = {"key": "k", "prefixes": ["10.1.0.0/16"]}
CASES = [
    ("mapserver", {"listen": "127.0.0.1", "port": 0, "sites": [{"name": "a", **SITE}, {"name": "b", **SITE}]},
     "prefix 10.1.0.0/16 is listed in sites a and b"),
    ("mapserver", {"listen": "127.0.0.1", "port": 0,
                   "sites": [{"name": "a", "key": "k", "prefixes": ["10.1.0.0/16", "10.1.0.0/16"]}]},
     "prefix 10.1.0.0/16 is listed twice in site a"),
    ("mapserver", {"listen": "127.0.0.1", "port": 0,
                   "sites": [{"name": "a", "key": "k", "prefixes": ["10.1.0.0/16", "10.1.1.1/16"]}]},
     "10.1.1.1/16 has host bits set"),
    ("client", {"name": "c1", "ssm": {"source": "10.0.0.10", "group": "10.0.0.1"}}, "ssm.group must be a multicast"),
    ("client", {"name": "c1", "ssm": {"source": "232.1.1.1", "group": "232.1.1.1"}}, "ssm.source must be a unicast"),
]


@pytest.mark.parametrize("program,config,needle", CASES)
def test_bad_config_is_one_line_and_exit_2(tmp_path, program, config, needle):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    res = subprocess.run([sys.executable, "-m", f"nodes.{program}", "--config", str(path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in res.stderr, res.stderr
