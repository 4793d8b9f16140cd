"""registry.holding_lock: an experiment keeps the machine-wide lock across its points' networks."""

from __future__ import annotations

import fcntl
import os

import pytest

from testbed.net import registry


def _free(path: str) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_the_lock_stays_held_between_networks_and_goes_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    lock = str(tmp_path / "testbed.lock")
    with registry.holding_lock(wait=0):
        for _point in range(3):  # what Testbed.start/stop do per point
            registry.acquire_lock()
            registry.release_lock()
            assert not _free(lock)
    assert _free(lock)


def test_a_held_lock_is_busy_at_once_before_anything_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    fd = os.open(str(tmp_path / "testbed.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(registry.Busy):
            with registry.holding_lock(wait=0):
                pytest.fail("entered without the lock")
    finally:
        os.close(fd)


def test_a_run_waiting_for_the_lock_says_so_on_a_terminal(tmp_path, monkeypatch):
    """Review: a run queued behind another printed nothing at all while it waited. On a terminal it now says
    once what it waits for; without a terminal (logs, tests) the waiting stays silent, the Busy line unchanged."""
    import pty
    import subprocess
    import sys
    monkeypatch.setattr(registry, "REGISTRY_DIR", str(tmp_path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {root!r}); from testbed.net import registry; "
            f"registry.REGISTRY_DIR = {str(tmp_path)!r}\n"
            "try:\n    registry.acquire_lock(0.5)\nexcept registry.Busy as e:\n    print('busy:', e)\n")
    registry.acquire_lock(wait=0)
    try:
        main, sub = pty.openpty()
        proc = subprocess.run([sys.executable, "-c", code], stdout=sub, stderr=sub, timeout=60)
        os.close(sub)
        tty = os.read(main, 8192).decode()
        os.close(main)
        piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    finally:
        registry.release_lock()
    assert proc.returncode == 0 and tty.count("waiting up to 0.5 s") == 1 and "busy:" in tty
    assert piped.stderr == "" and piped.stdout.startswith("busy: another testbed run is active")
