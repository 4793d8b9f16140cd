"""Shared test set-up: the ``net`` marker for tests that need root and network namespaces.

On an unprivileged machine such tests skip, except with ``CI=true`` or
``CORECAST_REQUIRE_NET=1``, where a missing capability fails the test instead.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=1)
def net_unavailable_reason() -> str | None:
    """Why namespace tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "needs root"
    res = subprocess.run([os.path.join(ROOT, "scripts", "preflight.sh"), "test"], capture_output=True, text=True)
    if res.returncode:
        return res.stderr.strip() or "preflight failed"
    return None


def net_required() -> bool:
    """True when a skipped namespace test must count as a failure."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get("CORECAST_REQUIRE_NET") == "1"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, in CI, fail) ``net`` tests when namespaces are not available."""
    if item.get_closest_marker("net") is None:
        return
    reason = net_unavailable_reason()
    if reason is None:
        return
    if net_required():
        pytest.fail(f"namespace test cannot run ({reason}) but CI/CORECAST_REQUIRE_NET demands it", pytrace=False)
    pytest.skip(f"namespace test: {reason}")


def corecast(*args: str, timeout: float = 300, check: bool = False, **kw) -> subprocess.CompletedProcess:
    """Run the ``corecast`` CLI (``python -m testbed``) and capture its output."""
    res = subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=kw.pop("cwd", ROOT), **kw)
    if check and res.returncode:
        raise AssertionError(f"corecast {' '.join(args)} exited {res.returncode}:\n{res.stdout}\n{res.stderr}")
    return res


def leftovers(grace_s: float = 15.0) -> tuple[list[str], list[int]]:
    """Our links and processes still present (both must be empty after any run).

    Looked at while holding the machine-wide testbed lock, so that a network another
    process is running at the same moment is not mistaken for a leftover. A process the
    teardown has just SIGKILLed (it does not wait for those) is listed until the kernel has
    run its exit, which a loaded machine delays: what is still there after ``grace_s``
    seconds is returned.
    """
    import time

    from testbed.net import registry
    from testbed.net.clean import our_links, our_processes
    registry.acquire_lock(wait=1800)
    try:
        deadline = time.monotonic() + grace_s
        while True:
            links, procs = our_links(), our_processes()
            if (not links and not procs) or time.monotonic() > deadline:
                return links, procs
            time.sleep(0.2)
    finally:
        registry.release_lock()
