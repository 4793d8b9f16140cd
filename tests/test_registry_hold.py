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
