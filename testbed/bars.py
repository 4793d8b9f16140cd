"""Progress bars of a sweep and of each stream, drawn by rich.

A sweep's bar (its points) and, nested under it, the bar of the current point's
stream (chunks or seconds) share one ``rich.progress.Progress`` display::

    with Bar(len(points), "gamma points", unit="points") as bar:
        for i, p in enumerate(points):
            with bar.child_bar(p.chunks, "corecast stream", unit="chunks") as s:
                while streaming:
                    s.update(chunks_sent)
            bar.update(i + 1)

On a terminal rich redraws both bars in place (at most ten times a second,
from the caller's thread: no refresh thread); output printed meanwhile goes
above them. Elsewhere (CI logs, a file) nothing is redrawn: one plain line every
``interval`` seconds and a final one, e.g.
``gamma points 3/10 points 0:02:00 ETA 0:03:20 | corecast stream 150/300 chunks``.

The ETA is the elapsed time scaled by the fraction left, where the children's
share of the current point counts (a sweep of slow points has an ETA from the
first half-point on): a point streams one child per mode, so with
``children_per_unit = 2`` a finished first stream is half a point and the second
one's chunks add to it (the bar never goes back when the next stream starts). A broken output stream never breaks a run: the display
turns itself off.

A bar left by an exception (Ctrl-C, a failed stream) before its total is done
says how far it got: its last line reads ``stopped after`` instead of ``in``,
with the current point's child, stopped or finished, after ``|``, e.g.
``gamma points 1/3 points stopped after 0:00:37 | corecast stream 950/1500 chunks``.
A child stays on its parent's line while it runs and once stopped; a finished
one leaves the display but comes back if the parent stops before moving on
(the parent's next :meth:`Bar.update` or :meth:`Bar.child_bar` drops it).
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, ProgressColumn, Task, TextColumn
from rich.progress import Progress as RichProgress
from rich.table import Column
from rich.text import Text


def clock_text(seconds: float | None) -> str:
    """``75`` -> ``0:01:15`` (rich's style); None, NaN or infinity -> ``-:--:--``."""
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


def _eta(task: Task) -> float | None:
    """Seconds left: elapsed x (1 - f) / f, f = completed / total (None before any progress)."""
    if not task.total or task.elapsed is None:
        return None
    frac = min(1.0, task.completed / task.total)
    if frac <= 0:
        return None
    return task.elapsed * (1 - frac) / frac


class _EtaColumn(ProgressColumn):
    """``0:01:10 ETA 0:03:20`` (elapsed, then :func:`_eta`), ``in 0:04:30`` once the task finished,
    ``stopped after 0:02:10`` if it was stopped before its total."""

    def render(self, task: Task) -> Text:
        if task.fields.get("stopped"):
            return Text(f"stopped after {clock_text(task.elapsed)}")
        if task.finished:
            return Text(f"in {clock_text(task.finished_time or task.elapsed)}")
        return Text(f"{clock_text(task.elapsed)} ETA {clock_text(_eta(task))}")


class Bar:
    """Progress over ``total`` units (points, chunks, seconds); a context manager that closes itself.

    ``stream`` defaults to stderr and ``tty`` to ``stream.isatty()``; ``clock`` is
    injectable for tests; ``enabled=False`` draws nothing (the counts still work).
    Leaving the ``with`` block by an exception closes it as stopped (see :meth:`close`).
    """

    TTY_MIN_INTERVAL = 0.1

    def __init__(self, total: float, label: str = "", *, unit: str = "", stream: TextIO | None = None,
                 interval: float = 10.0, tty: bool | None = None, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, _parent: "Bar | None" = None) -> None:
        self.total = max(0.0, float(total))
        self.label = label
        self.unit = unit
        self.done = 0.0
        self.closed = False
        self.stopped = False
        """Closed before its total was done, by an exception (see :meth:`close`)."""
        self.child: Bar | None = None
        self.children_per_unit = 1
        """How many child bars one unit holds (the streams of a point: one per mode); settable per unit."""
        self._children_done = 0  # children finished in the current unit
        self.parent = _parent
        if _parent is None:
            self.stream = stream if stream is not None else sys.stderr
            if tty is None:
                isatty = getattr(self.stream, "isatty", None)
                tty = bool(isatty()) if callable(isatty) else False
            self.tty, self.interval, self.enabled, self.clock = tty, interval, enabled, clock
            console = Console(file=self.stream, force_terminal=tty, highlight=False, soft_wrap=False)
            self.rich = RichProgress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                                     TextColumn("{task.fields[unit]}"), _EtaColumn(table_column=Column(no_wrap=True)),
                                     console=console, auto_refresh=False, get_time=clock,
                                     disable=not (enabled and tty), transient=False, redirect_stderr=False)
            self._last_draw: float | None = None
            self._started = clock()
            self._guard(self.rich.start)
        else:
            root = _parent.root
            self.stream, self.tty, self.interval = root.stream, root.tty, root.interval
            self.enabled, self.clock, self.rich = root.enabled, root.clock, root.rich
        indent = "  " * self.depth
        self.task = self.rich.add_task(indent + label, total=self.total or None, unit=unit, stopped=False)

    # -- tree ----------------------------------------------------------------------------------
    @property
    def root(self) -> "Bar":
        """The top bar (the one that owns the display)."""
        return self if self.parent is None else self.parent.root

    @property
    def depth(self) -> int:
        """0 for the top bar, 1 for its child, ..."""
        return 0 if self.parent is None else self.parent.depth + 1

    def child_bar(self, total: float, label: str, unit: str = "") -> "Bar":
        """A nested bar (the chunks or seconds of the current point); its share of a unit counts in the ETA."""
        self._drop_child()
        self.child = Bar(total, label, unit=unit, _parent=self)
        self._changed()
        return self.child

    def stream_seconds(self, seconds: float, label: str = "stream") -> "Bar":
        """A nested bar over the seconds of the current point's stream."""
        return self.child_bar(seconds, label, unit="s")

    # -- counting ------------------------------------------------------------------------------
    def _drop_child(self) -> None:
        """Close the child if still open and take it off the display for good."""
        child, self.child = self.child, None
        if child is None:
            return
        if not child.closed:
            child.close()
        self._guard(self.rich.remove_task, child.task)

    def _shows_child(self) -> bool:
        """Whether the child belongs on this bar's line: running, stopped, or finished when this bar stopped."""
        c = self.child
        return c is not None and (not c.closed or c.stopped or self.stopped)

    def update(self, done: float) -> None:
        """Set the units done so far (clamped to ``[0, total]``) and redraw if due; a closed child goes."""
        if self.child is not None and self.child.closed:
            self._drop_child()
        done = max(0.0, float(done))
        done = min(done, self.total) if self.total else done
        if done != self.done:
            self._children_done = 0  # a new unit: its children start from none
        self.done = done
        self._changed()

    def advance(self, n: float = 1) -> None:
        """Add ``n`` units done."""
        self.update(self.done + n)

    @property
    def fraction(self) -> float:
        """Fraction done in [0, 1], counting the children's share of the current unit: finished ones and
        the running one's part, over :attr:`children_per_unit` (at most the whole unit)."""
        if not self.total:
            return 1.0 if self.closed else 0.0
        done = self.done
        if done < self.total:
            share = float(self._children_done)
            c = self.child
            if c is not None and not c.closed and c.total:
                share += min(1.0, c.done / c.total)
            done += min(1.0, share / max(1, self.children_per_unit))
        return min(1.0, done / self.total)

    @property
    def eta(self) -> float | None:
        """Seconds left (None before any progress)."""
        return _eta(self.rich.tasks[self._index()])

    def _index(self) -> int:
        return [t.id for t in self.rich.tasks].index(self.task)

    def _changed(self) -> None:
        self._guard(self.rich.update, self.task, completed=self.fraction * self.total if self.total else self.done)
        if self.parent is not None:
            self.parent._changed()
        else:
            self.render()

    # -- drawing -------------------------------------------------------------------------------
    def line(self) -> str:
        """The plain status line: this bar, then its open (or stopped) children after ``|``."""
        total = f"{self.total:g}" if self.total else "?"
        text = f"{self.label} {self.done:g}/{total}" + (f" {self.unit}" if self.unit else "")
        if self.parent is None:
            task = self.rich.tasks[self._index()]
            if self.stopped:
                text += f" stopped after {clock_text(task.elapsed)}"
            elif self.closed:
                text += f" in {clock_text(task.elapsed)}"
            else:
                text += f" {clock_text(task.elapsed)} ETA {clock_text(_eta(task))}"
        if self._shows_child():
            text += " | " + self.child.line()
        return text

    def render(self, force: bool = False) -> None:
        """Draw now if due: on a TTY through rich (every 0.1 s at most), else a plain line every ``interval``."""
        if not self.enabled or self.parent is not None:
            return
        now = self.clock()
        gap = self.TTY_MIN_INTERVAL if self.tty else self.interval
        last = self._last_draw if self._last_draw is not None else (self._started if not self.tty else None)
        if not force and last is not None and now - last < gap:
            return
        self._last_draw = now
        if self.tty:
            self._guard(self.rich.refresh)
        else:
            self._guard(lambda: (self.stream.write(self.line() + "\n"), self.stream.flush()))

    def _guard(self, func: Callable, *args, **kw) -> None:
        """Call ``func``; a closed or broken output stream turns the display off instead of raising."""
        try:
            func(*args, **kw)
        except (OSError, ValueError):
            root = self.root
            root.enabled = False
            root.rich.disable = True

    def close(self, stopped: bool = False) -> None:
        """Finish: a child leaves the display; the top bar draws its final state and stops rich.

        ``stopped``: the work ended early (``__exit__`` passes True when an exception
        left the block). Unless the total was reached, the bar then keeps its counts
        on show: the top bar's last line says ``stopped after`` its elapsed time, and a
        child stays on its parent's line until the parent's next :meth:`update` or
        :meth:`child_bar`, so the final line after Ctrl-C tells how far the run got
        (a finished child is hidden meanwhile, shown again if its parent stops).
        """
        if self.closed:
            return
        self.closed = True
        self.stopped = stopped and not (self.total and self.done >= self.total)
        self._guard(self.rich.stop_task, self.task)  # elapsed stops growing
        if self.stopped:
            self._guard(self.rich.update, self.task, stopped=True)
        if self.parent is not None:
            if not self.stopped:
                self._guard(self.rich.update, self.task, visible=False)
                self.parent._children_done += 1
            self.parent._changed()
            return
        if self.stopped and self.child is not None:
            self._guard(self.rich.update, self.child.task, visible=True)
        self.render(force=True)
        if self.tty:
            self._guard(self.rich.stop)

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close(stopped=exc_type is not None)
        return False
