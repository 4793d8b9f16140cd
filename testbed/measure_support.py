"""What :mod:`testbed.measure` uses beside the stream itself: process CPU and memory, xTR drop counters,
and the helper thread a stream runs beside it (``Network.stream(during=...)``).

Kept apart so that :mod:`testbed.measure` stays one orchestration module; it re-exports these
names (``from testbed.measure import cpu_seconds`` keeps working for bench/ and testbed.attack).
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of a process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


DROP_COUNTERS = frozenset((
    "queue-overflow", "negative", "no-rloc", "unresolved", "bad-packet", "not-ipv4", "too-big-df", "stale-ref",
    "no-chunk", "hash-mismatch", "source-not-allowed", "ref-src-not-allowed", "chunk-too-big", "foreign-eid",
    "bad-inner", "bad-lisp", "corecast-not-capable", "raw-send-error", "tun-write-error"))
"""Counter names (in any section of an xTR status file) that count dropped packets."""


def count_drops(status: dict) -> int:
    """Packets an xTR dropped, summed over the sections of its status file."""
    return sum(v for section in status.values() if isinstance(section, dict)
               for k, v in section.items() if k in DROP_COUNTERS and isinstance(v, int))


class StreamHelper:
    """A function run in a thread beside a stream; :meth:`finish` joins it and re-raises its error."""

    def __init__(self, func: Callable[[Any], None], source: Any) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(func, source), daemon=True,
                                       name="stream-helper")
        self.thread.start()

    def _run(self, func: Callable[[Any], None], source: Any) -> None:
        try:
            func(source)
        except BaseException as exc:  # handed to the main thread by finish()
            self.error = exc

    def finish(self, timeout: float = 30.0, reraise: bool = True) -> None:
        """Wait for the function (at most ``timeout`` s) and raise what it raised (if ``reraise``)."""
        self.thread.join(timeout)
        if self.thread.is_alive() and reraise:
            raise RuntimeError(f"the stream helper did not finish within {timeout:.0f} s of the stream's end")
        if self.error is not None and reraise:
            raise self.error
