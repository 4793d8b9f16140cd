"""Issue 11 item 15: every experiment parameter is checked before anything is built.

Each bad parameter goes through the real ``corecast run`` entry point in-process:
one line on stderr, exit 2, no run directory, and no network (``Network`` and
``RunDir.create`` are replaced by tripwires, so no root is needed). One sample
also runs the real CLI as a subprocess. Times are loose (< 30 s, milliseconds in fact) on purpose.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import pytest

import testbed.cli
import testbed.experiment
from experiments import EXPERIMENTS
from testbed.experiment import parse_experiment_params
from testbed.nodeutil import ConfigError
from testbed.params import check_out_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Built(RuntimeError):
    """Something was built although the parameters were bad."""


@pytest.fixture
def tripwires(monkeypatch):
    def trip(*_a, **_k):
        raise Built("a network or a run directory was created")
    monkeypatch.setattr(testbed.experiment, "Network", trip)
    monkeypatch.setattr(testbed.experiment.registry, "holding_lock", contextlib.nullcontext)  # no machine lock
    monkeypatch.setattr(testbed.experiment.RunDir, "create", classmethod(lambda cls, *a, **k: trip()))
    monkeypatch.setattr(testbed.cli.os, "geteuid", lambda: 0)  # the root check comes first; not needed here


def run_cli(capsys, *argv: str) -> tuple[int, list[str], float]:
    start = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        testbed.cli.main(list(argv))
    took = time.monotonic() - start
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines(), took


SAMPLES = [
    ("demo", "chunk_bytes=0", "chunk_bytes"),
    ("smoke", "bitrate=0", "bitrate"),
    ("smoke", "chunk_bytes=0", "chunk_bytes"),
    ("smoke", "chunk_bytes=100", "chunk_bytes"),
    ("smoke", "chunk_bytes=1500", "chunk_bytes"),
    ("smoke", "chunk_bytes=65536", "chunk_bytes"),
    ("smoke", "chunk_bytes=1200", "multiple of 188"),
    ("smoke", "chunk_bytes=1400", "multiple of 188"),
    ("smoke", "chunks=0", "chunks"),
    ("smoke", "speed=0", "speed"),
    ("smoke", "register_interval=0", "register_interval"),
    ("smoke", "expiry=-1", "expiry"),
    ("smoke", "content=dvd", "content"),
    ("demo", "seconds=0", "seconds"),
    ("demo", "seconds=0.001", "seconds"),
    ("smoke", "bitrate=1000", "bitrate"),
    ("smoke", "speed=abc", "speed"),
    ("smoke", "player=3", "player"),
    ("smoke", "keep_records=maybe", "keep_records"),
    ("smoke", "max_pps=0", "max_pps"),
    ("smoke", "register_interval=30", None),  # valid alone: expiry defaults to 3 x 30 s
    ("smoke", "expiry=10", "expiry"),         # shorter than the 60 s register interval
    ("gamma", "max_pps=0", "max_pps"),
    ("load", "seconds=-2", "seconds"),
    ("join", "speed=2000", "speed"),
    # review: NaN went through (tracebacks later, or accepted)
    ("gamma", "gammas=nan", "finite"),
    ("gamma", "gammas=1,nan", "finite"),
    ("batch", "gammas=nan", "finite"),
    ("compare", "gammas=NaN", "finite"),
    ("loss", "losses=nan", "finite"),
    ("load", "ks=nan", "finite"),
    ("distribution", "zipf_s=nan", "finite"),
    ("attack", "lead_s=nan", "finite"),
    ("p2p", "buffer_s=nan", "finite"),
    ("channel-change", "buffer_s=nan", "finite"),
    ("smoke", "speed=-inf", "finite"),
    # review: a whole-number parameter typed as 1e12 was shown as '1000000000000.0'
    ("gamma", "max_pps=1e12", "max_pps must be a whole number, got '1e+12'"),
    ("gamma", "chunks=-1e3", "chunks must be a whole number, got '-1000'"),
]


@pytest.mark.parametrize("experiment,setting,needle", SAMPLES)
def test_bad_parameter_is_one_line_exit_2_and_nothing_built(tmp_path, capsys, tripwires, experiment, setting,
                                                           needle):
    code, err, took = run_cli(capsys, "run", experiment, "--set", setting, "--out", str(tmp_path / "run"))
    if needle is None:  # a valid setting reaches the tripwire: the check let it through
        assert code == 1 and "created" in err[-1]
        return
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("corecast: ") and needle in err[0]
    assert took < 30.0  # no wait, no build: milliseconds; generous for a loaded machine
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("out", ["/proc/corecast-out", "/proc", "/dev/null/run"])
def test_unwritable_out_directory_is_refused_before_anything_is_built(capsys, tripwires, out):
    code, err, took = run_cli(capsys, "run", "smoke", "--out", out)
    assert code == 2 and len(err) == 1 and "--out" in err[0] and took < 30.0


def test_read_only_out_directory(tmp_path, capsys, tripwires):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.geteuid() == 0:  # root ignores permission bits: a file system that refuses stands in
            with pytest.raises(ConfigError, match="not writable"):
                check_out_dir("/proc/sys/run")
        else:
            code, err, _ = run_cli(capsys, "run", "smoke", "--out", str(ro / "run"))
            assert code == 2 and len(err) == 1 and "not writable" in err[0]
    finally:
        ro.chmod(0o700)


def test_every_experiments_defaults_pass_the_upfront_checks():
    for name, module in EXPERIMENTS.items():
        params = parse_experiment_params(module, [])
        if "chunk_bytes" in params:
            assert params["chunk_bytes"] % 188 == 0 and 1200 <= params["chunk_bytes"] <= 1400


def test_demo_seconds_gives_the_chunk_count():
    params = parse_experiment_params(EXPERIMENTS["demo"], ["seconds=2"])
    assert params["chunks"] == round(2 * 1_000_000 / (8 * 1316))


def test_the_real_cli_refuses_without_building(tmp_path, monkeypatch):
    """The console entry point itself, in a subprocess (as root it would build the network if the check failed).

    The testbed lock (a private registry's, CORECAST_REGISTRY) is held by this test: a CLI that took it
    before checking the parameters would wait up to CORECAST_LOCK_WAIT and miss the 60 s timeout (this
    replaces a wall-clock bound, which a loaded machine could miss)."""
    from testbed.net import registry
    reg = tmp_path / "registry"
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(reg))
    registry.acquire_lock(wait=0)
    try:
        env = dict(os.environ, CORECAST_REGISTRY=str(reg), CORECAST_LOCK_WAIT="1800")
        proc = subprocess.run([sys.executable, "-m", "testbed", "run", "smoke", "--set", "chunk_bytes=1500",
                               "--out", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env=env)
    finally:
        registry.release_lock()
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    if os.geteuid() == 0:
        assert "chunk_bytes" in lines[0] and not (tmp_path / "run").exists()
    else:
        assert "needs root" in lines[0]


def _every_parameter():
    for name, module in sorted(EXPERIMENTS.items()):
        for key, default in sorted(module.DEFAULTS.items()):
            yield pytest.param(name, key, default, id=f"{name}-{key}")


@pytest.mark.parametrize("experiment,key,default", list(_every_parameter()))
def test_every_parameter_of_every_experiment_is_checked(experiment, key, default):
    """Generated: each parameter of each experiment refuses a value of the wrong kind, and a negative number."""
    module = EXPERIMENTS[experiment]
    with pytest.raises(ConfigError, match=key) as err:
        parse_experiment_params(module, [f"{key}=abc"])
    assert "\n" not in str(err.value)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and key != "seed":  # any int seeds
        with pytest.raises(ConfigError) as err:
            parse_experiment_params(module, [f"{key}=-1"])
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("sets,needle", [
    (["register_interval=0"], "register_interval"), (["expiry=abc"], "expiry"),
    (["register_interval=10", "expiry=5"], "shorter than register_interval"),
])
def test_check_and_cli_verbs_check_lisp_timers_before_building(sets, needle):
    """``corecast check`` and ``corecast cli`` take the same timers: refused when the sets are parsed."""
    from testbed.session import plan_from_sets
    with pytest.raises(ConfigError, match=needle):
        plan_from_sets(sets)
