"""The upload limit of a peer: a token bucket in bytes, and the queue of chunks waiting for tokens (sans-I/O).

A peer's upload capacity is a multiple of the stream rate (:attr:`P2PParams.upload`):
``rate`` bytes/s of CHUNK messages (24 + P bytes each, so 1.0 uploads exactly one copy of
the stream), with a depth of ``burst_chunks`` messages. Requests that cannot be served
before the requester gives up (``request_timeout_s``) are dropped, not sent late.
"""

from __future__ import annotations

from collections import deque

EPSILON = 1e-6
"""Bytes of rounding error forgiven (float refills must not leave a chunk a hair short for ever)."""


class TokenBucket:
    """Tokens in bytes, refilled at ``rate`` bytes/s up to ``depth`` bytes; times in seconds."""

    def __init__(self, rate: float, depth: float, now: float = 0.0) -> None:
        if not rate > 0 or not depth > 0:
            raise ValueError("rate and depth must be > 0")
        self.rate = float(rate)
        self.depth = float(depth)
        self.tokens = float(depth)
        self.last = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill (a clock going backwards earns nothing)."""
        if now > self.last:
            self.tokens = min(self.depth, self.tokens + (now - self.last) * self.rate)
            self.last = now

    def take(self, nbytes: int, now: float) -> bool:
        """Spend ``nbytes`` tokens if there are that many; True when spent."""
        self.refill(now)
        if self.tokens + EPSILON >= nbytes:
            self.tokens = max(0.0, self.tokens - nbytes)
            return True
        return False

    def ready_at(self, nbytes: int, now: float) -> float:
        """The time at which ``nbytes`` tokens will be there (``now`` if they already are)."""
        self.refill(now)
        if self.tokens + EPSILON >= nbytes:
            return now
        return now + (min(nbytes, self.depth) - self.tokens + EPSILON) / self.rate


class UploadQueue:
    """FIFO of (enqueued at, destination, seq) waiting for tokens; bounded (``limit``), stale entries dropped."""

    def __init__(self, limit: int = 4096) -> None:
        self.items: deque = deque()
        self.limit = limit
        self.overflow = 0
        self.expired = 0

    def push(self, now: float, dst: tuple[str, int], seq: int) -> bool:
        """Queue a chunk for ``dst``; False (counted) when the queue is full."""
        if len(self.items) >= self.limit:
            self.overflow += 1
            return False
        self.items.append((now, dst, seq))
        return True

    def drop_older(self, cutoff: float) -> None:
        """Drop the entries queued before ``cutoff`` (their requester has timed out)."""
        items = self.items
        while items and items[0][0] < cutoff:
            items.popleft()
            self.expired += 1

    def __len__(self) -> int:
        return len(self.items)
