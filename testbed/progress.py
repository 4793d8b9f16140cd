"""A small progress display on stderr, without dependencies.

On a terminal it keeps one line up to date (``\\r`` and erase-to-end); elsewhere
(CI logs, a file) it prints one plain line every ``interval`` seconds and a
final one, so logs stay short. A sweep shows its points and, nested, the
seconds of the stream of the current point::

    with Progress(len(points), "gamma", unit="points") as bar:
        for p in points:
            with bar.stream_seconds(30, note=f"k={p.k}") as s:
                while streaming:
                    s.update(elapsed)
            bar.advance()

renders as ``gamma [######------] 3/10 points 40s each ETA 5m50s | k=40 stream 12/30 s``.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Callable, TextIO


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``1m15s``, ``3725`` -> ``1h02m``, None -> ``?``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


class Progress:
    """Progress over ``total`` units (points of a sweep, seconds of a stream), rendered on ``stream``.

    ``tty`` defaults to ``stream.isatty()``. ``clock`` is injectable for tests.
    ``enabled=False`` renders nothing (the counts still work).
    """

    BAR = 20
    TTY_MIN_INTERVAL = 0.1

    def __init__(self, total: float, label: str = "", *, unit: str = "", stream: TextIO | None = None,
                 interval: float = 10.0, tty: bool | None = None, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, _parent: "Progress | None" = None) -> None:
        self.total = max(0.0, float(total))
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.enabled = enabled
        self.clock = clock
        self.done = 0.0
        self.note = ""
        self.child: Progress | None = None
        self.closed = False
        self._parent = _parent
        self.started = clock()
        self._last_render: float | None = None
        self._drawn = False

    # -- counting ------------------------------------------------------------
    def update(self, done: float, note: str | None = None) -> None:
        """Set the units done so far (clamped to ``[0, total]``), optionally a short note, and render."""
        self.done = min(max(0.0, float(done)), self.total) if self.total else max(0.0, float(done))
        if note is not None:
            self.note = note
        self._changed()

    def advance(self, n: float = 1, note: str | None = None) -> None:
        """Add ``n`` units done."""
        self.update(self.done + n, note)

    @property
    def elapsed(self) -> float:
        """Seconds since this progress started."""
        return self.clock() - self.started

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1], counting a running child's share of the current unit."""
        if not self.total:
            return 1.0 if self.closed else 0.0
        done = self.done
        if self.child is not None and self.child.total and done < self.total:
            done += min(1.0, self.child.done / self.child.total)
        return min(1.0, done / self.total)

    @property
    def rate(self) -> float | None:
        """Units per second so far (None before any time passed or any unit was done)."""
        elapsed = self.elapsed
        done = self.fraction * self.total
        if elapsed <= 0 or done <= 0:
            return None
        return done / elapsed

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None if unknown)."""
        rate = self.rate
        if rate is None:
            return None
        return max(0.0, (self.total - self.fraction * self.total) / rate)

    # -- nesting ---------------------------------------------------------------
    def child_bar(self, total: float, label: str, unit: str = "", note: str = "") -> "Progress":
        """A nested progress (seconds or chunks of the current point), shown on the same line.

        Its share of the current unit counts in the parent's ETA. Close it (or use it
        as a context manager) when the point ends.
        """
        child = Progress(total, label, unit=unit, stream=self.stream, interval=self.interval, tty=self.tty,
                         enabled=self.enabled, clock=self.clock, _parent=self)
        child.note = note
        self.child = child
        self._changed()
        return child

    def stream_seconds(self, seconds: float, label: str = "stream", note: str = "") -> "Progress":
        """A nested progress over the seconds of the current point's stream: ``child_bar(seconds, label, "s")``."""
        return self.child_bar(seconds, label, unit="s", note=note)

    # -- rendering -------------------------------------------------------------
    def _text(self) -> str:
        parts = []
        if self.label:
            parts.append(self.label)
        if self._parent is None:
            filled = int(self.fraction * self.BAR)
            parts.append("[" + "#" * filled + "-" * (self.BAR - filled) + "]")
        total = _num(self.total) if self.total else "?"
        parts.append(f"{_num(self.done)}/{total}" + (f" {self.unit}" if self.unit else ""))
        if self._parent is None:
            rate = self.rate
            if rate is not None and self.done:
                parts.append(f"{format_duration(1 / rate)} each" if rate < 1 else f"{rate:.1f}/s")
            if self.closed:
                parts.append(f"in {format_duration(self.elapsed)}")
            else:
                parts.append(f"ETA {format_duration(self.eta)}")
        text = " ".join(parts)
        if self.note:
            text = f"{self.note} {text}" if self._parent is not None else f"{text} {self.note}"
        return text

    def line(self) -> str:
        """The current status line (with the nested stream progress, if any)."""
        text = self._text()
        if self.child is not None and not self.child.closed:
            text += " | " + self.child._text()
        return text

    def _changed(self) -> None:
        if self._parent is not None:
            self._parent._changed()
            return
        self.render()

    def render(self, force: bool = False) -> None:
        """Draw now if due: on a TTY at most every 0.1 s, otherwise every ``interval`` seconds."""
        if not self.enabled or (self.closed and not force):
            return
        now = self.clock()
        gap = self.TTY_MIN_INTERVAL if self.tty else self.interval
        if not force and self._last_render is not None and now - self._last_render < gap:
            return
        if not force and self._last_render is None and not self.tty and now - self.started < gap:
            return  # non-TTY: the first line after `interval` seconds, not at once
        self._last_render = now
        text = self.line()
        try:
            if self.tty:
                width = shutil.get_terminal_size((100, 20)).columns
                self.stream.write("\r" + text[: max(10, width - 1)] + "\x1b[K")
            else:
                self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: never break the run for a display
            self.enabled = False
            return
        self._drawn = True

    def close(self) -> None:
        """Finish: a nested progress detaches from its parent; the top one draws its final line."""
        if self.closed:
            return
        self.closed = True
        if self._parent is not None:
            if self._parent.child is self:
                self._parent.child = None
            self._parent._changed()
            return
        self.render(force=True)
        if self.tty and self._drawn and self.enabled:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        return False
