"""``corecast run ... --live``: what each stream is doing while it runs.

Per stream (one mode of one point): chunks sent by the source, chunks delivered
per client AS (summed over its clients' per-EID counters), bytes sent on the
source AS's core uplink since the stream's first look, and the source ITR's
counters (its ``itr`` and ``corecast_itr`` sections, the non-zero ones).

On a terminal a rich table is redrawn in place (at most four times a second;
the progress bars are off meanwhile: one live display at a time); elsewhere
(CI logs, a file) one plain line every ``interval`` seconds and a last one when
the stream ends, e.g.
``live smoke/corecast 1.2s sent 120/300 | AS1 240/360 AS2 238/360 | uplink 0.214 MB | itr data-in=120 ...``.

Sources, all written by the daemons themselves: the source's and the clients'
status files (clients rewrite theirs every second) and the ITR's status file,
plus ``ip -s -j link`` in the border router's namespace for the uplink bytes.
A file that is missing or half-written counts as zeros: the view never stops a run.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TextIO

ITR_SECTIONS = ("itr", "corecast_itr")


@dataclass
class Snapshot:
    """One look at a running stream."""

    label: str
    mode: str
    elapsed: float
    chunks_sent: int
    chunks_total: int
    delivered: dict[int, int] = field(default_factory=dict)  # client AS -> chunks delivered (all its clients)
    expected: dict[int, int] = field(default_factory=dict)  # client AS -> clients x chunks sent
    uplink_bytes: int = 0
    itr: dict[str, int] = field(default_factory=dict)  # "section.counter" -> value (non-zero)


def _json(path: str | None) -> dict:
    if not path:
        return {}
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def itr_counters(status: dict, limit: int = 8) -> dict[str, int]:
    """The non-zero integer counters of an xTR status file's ITR sections, ``section.name`` keys, at most ``limit``."""
    out: dict[str, int] = {}
    for section in ITR_SECTIONS:
        values = status.get(section)
        if not isinstance(values, dict):
            continue
        for name, value in sorted(values.items()):
            if isinstance(value, int) and not isinstance(value, bool) and value:
                out[f"{section}.{name}"] = value
    return dict(list(out.items())[:limit])


def delivered_per_as(clients: list[tuple[int, str]], statuses: list[dict]) -> dict[int, int]:
    """Chunks delivered per client AS: ``clients`` are (AS, EID); each status has ``eids: {EID: {received}}``."""
    received: dict[str, int] = {}
    for st in statuses:
        for eid, row in (st.get("eids") or {}).items():
            if isinstance(row, dict) and isinstance(row.get("received"), int):
                received[eid] = received.get(eid, 0) + row["received"]
    out: dict[int, int] = {}
    for as_number, eid in clients:
        out[as_number] = out.get(as_number, 0) + received.get(eid, 0)
    return out


def plain_line(s: Snapshot) -> str:
    """The log line of a snapshot."""
    ases = " ".join(f"AS{a} {s.delivered.get(a, 0)}/{s.expected.get(a, 0)}" for a in sorted(s.expected))
    itr = " ".join(f"{k.split('.', 1)[1]}={v}" for k, v in s.itr.items())
    return (f"live {s.label}/{s.mode} {s.elapsed:.1f}s sent {s.chunks_sent}/{s.chunks_total} | {ases} | "
            f"uplink {s.uplink_bytes / 1e6:.3f} MB | itr {itr or '-'}")


def table(s: Snapshot):
    """A rich renderable of a snapshot (the terminal view)."""
    from rich.table import Table
    t = Table(title=f"{s.label} / {s.mode}: {s.chunks_sent}/{s.chunks_total} chunks sent, {s.elapsed:.1f} s, "
                    f"uplink {s.uplink_bytes / 1e6:.3f} MB", title_justify="left")
    t.add_column("client AS", justify="right")
    t.add_column("delivered", justify="right")
    t.add_column("expected", justify="right")
    for a in sorted(s.expected):
        t.add_row(f"AS{a}", str(s.delivered.get(a, 0)), str(s.expected.get(a, 0)))
    for k, v in s.itr.items():
        t.add_row(f"[dim]x0 {k}[/dim]", str(v), "")
    return t


class LiveView:
    """Shows snapshots: in place on a terminal, a plain line every ``interval`` seconds elsewhere."""

    TTY_GAP = 0.25

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, interval: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            try:
                tty = bool(isatty()) if callable(isatty) else False
            except (OSError, ValueError):  # a closed stream
                tty = False
        self.tty, self.interval, self.clock = tty, interval, clock
        self.enabled = True
        self._live: Any = None
        self._last: float | None = None
        self._base: dict[str, tuple[float, int]] = {}  # stream tag -> (start time, uplink tx bytes)

    def show(self, snap: Snapshot, final: bool = False) -> None:
        """Draw ``snap`` if due (always when ``final``)."""
        if not self.enabled:
            return
        now = self.clock()
        gap = self.TTY_GAP if self.tty else self.interval
        if not final and self._last is not None and now - self._last < gap:
            return
        self._last = now
        try:
            if self.tty:
                from rich.console import Console
                from rich.live import Live
                if self._live is None:
                    self._live = Live(table(snap), console=Console(file=self.stream, force_terminal=True),
                                      auto_refresh=False, redirect_stderr=False)
                    self._live.start()
                self._live.update(table(snap), refresh=True)
                if final:
                    self._live.stop()
                    self._live = None
            else:
                self.stream.write(plain_line(snap) + "\n")
                self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False

    def begin(self, tag: str, uplink_tx_bytes: int) -> None:
        """A stream ``tag`` (``label-mode``) starts now, with the uplink's tx byte counter at ``uplink_tx_bytes``."""
        self._base[tag] = (self.clock(), uplink_tx_bytes)

    def due(self) -> bool:
        """Whether a snapshot would be drawn now (to skip collecting one that would not)."""
        gap = self.TTY_GAP if self.tty else self.interval
        return self.enabled and (self._last is None or self.clock() - self._last >= gap)

    def tick(self, network: Any, spec: Any, source_status: dict, final: bool = False) -> None:
        """Collect and show a snapshot of ``network``'s running stream (a :class:`testbed.measure.Network`)."""
        if not (final or self.due()):
            return
        try:
            snap = self.collect(network, spec, source_status)
        except Exception:  # the view must never break a run
            return
        self.show(snap, final=final)

    def collect(self, network: Any, spec: Any, source_status: dict) -> Snapshot:
        """A snapshot from the daemons' status files and the uplink's counters."""
        from testbed.net.capture import read_counters
        plan = network.plan
        tag = f"{network.label}-{spec.mode}"
        node = network.tb.node(plan.source_as.xtr)
        tx = read_counters(node, plan.source_as.core_if).tx_bytes
        start, tx0 = self._base.setdefault(tag, (self.clock(), tx))  # begin() not called: from the first look
        sent = int(source_status.get("chunks", source_status.get("chunks_sent", 0)) or 0)
        clients = [(a, eid) for a, _host, eid in plan.clients()]
        statuses = [_json(c.config.get("status_file")) for c in getattr(network, "_clients", []) or []]
        per_as_clients: dict[int, int] = {}
        for a, _eid in clients:
            per_as_clients[a] = per_as_clients.get(a, 0) + 1
        x0 = _json(network.xtr(0).config.get("status_file"))
        return Snapshot(network.label, spec.mode, self.clock() - start, sent, int(spec.chunks),
                        delivered_per_as(clients, statuses), {a: n * sent for a, n in per_as_clients.items()},
                        max(0, tx - tx0), itr_counters(x0))

    def close(self) -> None:
        """Stop an in-place display that is still up."""
        if self._live is not None:
            try:
                self._live.stop()
            except (OSError, ValueError):
                pass
            self._live = None
