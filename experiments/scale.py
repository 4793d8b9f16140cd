"""scale: how far one machine goes (issue 16 item 4): j = 10, 100, 500, 1,000 client ASes at gamma = 10 and 100.

Every point (j ASes, gamma clients each, k = j gamma up to 100,000, one receiver process
per AS serving many EIDs, addresses from :mod:`testbed.addressing`) brings its network
up, streams a short stream (``chunks``, default 5) in each mode of ``modes`` (default
``corecast``) and tears it down. The source's rate is capped at ``max_pps`` datagrams/s
(:func:`experiments.common.stream_speed`), so large points stream below real time:
the row's ``speed`` says by how much, and the figure says so too. The source also spreads
each chunk's k + 1 datagrams at ``max_pps`` (its ``max_pps`` config): at k = 100,000 one
chunk sent as one burst overflowed the ITR's service socket.

Before the measured stream of each mode, a warm-up stream of ``warmup_chunks`` (default 2, 0 for
none) runs on the same network and is not recorded (its delivery goes into the row's
``warmup_delivered`` and ``warmup_expected``): at the first CoreCast message every ETR
vouches for the ITR through the mapping system (docs/security.md), and with hundreds of
ETRs asking the map-server at once that start-up, which the ``join`` experiment
measures, would otherwise be mixed into a steady-state measurement.

Checked per stream, as every experiment: every chunk delivered intact to every client
(digest per chunk and client) and the core bytes captured on x0's uplink equal to
the model to 0.1 %. Recorded per point, beside the usual columns:

* ``bringup_s``: topology up, every xTR registered, every client AS resolved at the
  ITR (``Network.__enter__``); ``teardown_s``: the network gone.
* ``mem_base_mib``, ``mem_peak_mib``, ``mem_delta_mib``: the machine's used memory
  (``MemTotal - MemAvailable`` of /proc/meminfo, MiB) just before bring-up, its
  peak sampled every ``mem_interval_s`` until the network is down, and the difference
  (other processes on the machine count too: the figure shows the delta).
* ``itr_cpu_s`` and ``itr_cpu_pct``: CPU seconds (user + system, /proc/<pid>/stat)
  of x0's daemon over the stream, and per second of stream; ``stream_s``: run time
  of the stream; ``point_s``: the whole point, bring-up to teardown.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from experiments.common import (Point, check_common, parse_list, reject_swept, report, stream_speed)
from testbed.addressing import MAX_PLAN_ASES
from testbed.modes import selected_modes
from testbed.nodeutil import ConfigError
from testbed.params import MAX_CLIENTS

DESCRIPTION = "scale: j = 10..1,000 ASes at gamma 10 and 100 (k up to 100,000): bring-up, memory, ITR CPU, delivery"
DEFAULTS: dict[str, Any] = {
    "js": "10,100,500,1000", "gammas": "10,100", "chunks": 5, "chunk_bytes": 1316, "bitrate": 1_000_000,
    "speed": 10.0, "max_pps": 15000, "content": "file", "client_hosts": "per-as",
    "mem_interval_s": 0.5, "warmup_chunks": 2,
}
MODES = "corecast"
"""The modes streamed when ``modes`` is not set."""
MEMINFO = "/proc/meminfo"


def validate(params: dict[str, Any]) -> None:
    """js within 1..4,000, gammas >= 1, k = j gamma within 1..100,000 at every point; one-line ConfigError."""
    check_common(params)
    params.setdefault("modes", MODES)
    reject_swept(params, DEFAULTS, ("ases", "clients", "total", "distribution"),
                 "choose the points with js=10,100 and gammas=10,100")
    params["js"] = parse_list(params["js"], "js", int, 1, MAX_PLAN_ASES)
    params["gammas"] = parse_list(params["gammas"], "gammas", float, 1.0, float(MAX_CLIENTS))
    for name in ("js", "gammas"):
        if len(set(params[name])) != len(params[name]):
            raise ConfigError(f"{name} lists a value twice")
    too_big = [(j, g) for j in params["js"] for g in params["gammas"] if round(j * g) > MAX_CLIENTS]
    if too_big:
        j, g = too_big[0]
        raise ConfigError(f"j {j} x gamma {g:g} = {round(j * g):,} clients: at most {MAX_CLIENTS:,}")
    if not 0 <= params["warmup_chunks"] <= 100:
        raise ConfigError(f"warmup_chunks must be within 0..100, got {params['warmup_chunks']}")
    interval = params["mem_interval_s"]
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.05 <= interval <= 10:
        raise ConfigError(f"mem_interval_s must be within 0.05..10 seconds, got '{interval}'")


def points(params: dict[str, Any]) -> list[Point]:
    """One point per (j, gamma), smallest k first: k = round(j gamma) clients spread evenly over j ASes."""
    out = []
    for j in sorted(params["js"]):
        for g in sorted(params["gammas"]):
            k = round(j * g)
            out.append(Point(label=f"j{j}-g{g:g}", speed=stream_speed(params, k + 1),
                             topo={"ases": j, "distribution": "uniform", "total": k, "client_hosts": "per-as"},
                             row={"j": j, "target_gamma": g}))
    return sorted(out, key=lambda p: (p.topo["total"], p.topo["ases"]))


def used_mib() -> float:
    """The machine's used memory now, MiB: MemTotal - MemAvailable of /proc/meminfo (0.0 if unreadable)."""
    fields: dict[str, int] = {}
    try:
        with open(MEMINFO) as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in ("MemTotal", "MemAvailable"):
                    fields[name] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    if len(fields) != 2:
        return 0.0
    return (fields["MemTotal"] - fields["MemAvailable"]) / 1024.0


class MemoryPeak:
    """The peak of :func:`used_mib`, sampled every ``interval`` seconds by a daemon thread (a context manager).

    ``base`` is the value at entry, ``peak`` the largest value seen up to exit (both MiB).
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.base = self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scale-mem", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, used_mib())

    def __enter__(self) -> "MemoryPeak":
        self.base = self.peak = used_mib()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5 * self.interval + 1.0)
        self.peak = max(self.peak, used_mib())


def run_point(ctx: Any, point: Point) -> list[dict[str, Any]]:
    """Bring the point's network up (timed, memory sampled), stream every mode, tear it down; rows recorded."""
    rows: list[dict[str, Any]] = []
    paced = {"source": {"max_pps": float(ctx.params["max_pps"])}}  # a chunk's k + 1 datagrams spread, not one burst
    t_start = time.monotonic()
    with MemoryPeak(float(ctx.params["mem_interval_s"])) as mem:
        net = ctx.network(point.label, **point.topo)
        t0 = time.monotonic()
        with net:
            bringup = time.monotonic() - t0
            print(f"{point.label}: {len(net.plan.all_ases)} xTRs registered, {point.topo['total']:,} clients "
                  f"resolved in {bringup:.1f} s", flush=True)
            for mode in point.modes or selected_modes(ctx.params):
                warm: dict[str, Any] = {"warmup_delivered": 0, "warmup_expected": 0}
                if ctx.params["warmup_chunks"]:  # not recorded: every ETR vouches for the ITR before the stream
                    w = net.stream(ctx.spec(mode, speed=point.speed, chunks=ctx.params["warmup_chunks"], extra=paced))
                    warm = {"warmup_delivered": w["delivered_chunks"], "warmup_expected": w["expected_chunks"]}
                row = net.stream(ctx.spec(mode, speed=point.speed, extra=paced))
                row.update({**point.row, **warm}, bringup_s=round(bringup, 3), speed=point.speed)
                rows.append(row)
            t1 = time.monotonic()
        teardown = time.monotonic() - t1
    total = time.monotonic() - t_start
    for row in rows:
        s = row.get("stream_s") or 0.0
        row.update(teardown_s=round(teardown, 3), point_s=round(total, 3), mem_base_mib=round(mem.base, 1),
                   mem_peak_mib=round(mem.peak, 1), mem_delta_mib=round(mem.peak - mem.base, 1),
                   itr_cpu_pct=round(100.0 * row.get("itr_cpu_s", 0.0) / s, 2) if s else None)
        ctx.record(row)
    return rows


def run(ctx: Any) -> int:
    """Every point in turn (a failed point is reported, the others go on); the checks; a table of the costs."""
    from experiments.common import run_sweep
    rows, problems = run_sweep(ctx, points(ctx.params), run_point)
    code = report(ctx, rows, extra_problems=problems)
    print(f"{'point':<12} {'mode':<9} {'k':>7} {'j':>5} {'speed':>7} {'bring-up s':>10} {'teardown s':>10} "
          f"{'stream s':>9} {'ITR CPU s':>9} {'mem peak MiB':>12} {'mem +MiB':>9}")
    for r in rows:
        print(f"{r['point']:<12} {r['mode']:<9} {r['clients']:>7} {r['active_ases']:>5} {r['speed']:>7.4f} "
              f"{r['bringup_s']:>10.1f} {r['teardown_s']:>10.1f} {r['stream_s']:>9.1f} {r['itr_cpu_s']:>9.2f} "
              f"{r['mem_peak_mib']:>12.0f} {r['mem_delta_mib']:>9.0f}")
    return code
