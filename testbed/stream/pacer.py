"""Absolute-deadline pacing of stream chunks (sans-I/O: the caller supplies ``now``).

Chunk ``k`` is due at ``start + k / rate``. Deadlines never depend on when the
previous chunk actually went out, so pacing does not drift: a late chunk is
sent at once and the next one is still due at its own deadline (the sender
catches up with a short burst).
"""

from __future__ import annotations


def chunk_rate(bitrate: float, chunk_bytes: int, speed: float = 1.0) -> float:
    """Return chunks per second for a stream of ``bitrate`` bits/s cut in ``chunk_bytes`` chunks."""
    if bitrate <= 0 or chunk_bytes <= 0 or speed <= 0:
        raise ValueError("bitrate, chunk_bytes and speed must be positive")
    return bitrate * speed / (8.0 * chunk_bytes)


class Pacer:
    """Tell when the next chunk is due; count late chunks.

    ``late_slack`` is how far past its deadline a chunk may go out before it is
    counted as late.
    """

    def __init__(self, rate: float, start: float, late_slack: float = 0.005) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.start = float(start)
        self.late_slack = late_slack
        self.index = 0
        """Index of the next chunk to send."""
        self.late = 0
        """Chunks that went out more than ``late_slack`` after their deadline."""
        self.max_late = 0.0
        """Largest lateness seen, seconds."""

    def deadline(self, k: int | None = None) -> float:
        """Return the absolute deadline of chunk ``k`` (default: the next one)."""
        if k is None:
            k = self.index
        return self.start + k / self.rate

    def delay(self, now: float) -> float:
        """Return seconds until the next chunk is due (<= 0 means send it now)."""
        return self.deadline() - now

    def due(self, now: float) -> bool:
        """True if the next chunk is due at ``now``."""
        return self.deadline() <= now

    def sent(self, now: float) -> int:
        """Record that the next chunk went out at ``now``; return its index."""
        lateness = now - self.deadline()
        if lateness > self.late_slack:
            self.late += 1
        if lateness > self.max_late:
            self.max_late = lateness
        k = self.index
        self.index += 1
        return k
