"""Pieces the experiments share: run both modes on one topology, print the table, check the rows.

Sweeps describe each point as a :class:`Point` (label, topology values, stream
speed, extra row columns), run them with :func:`run_sweep` (a failed point is
reported and the sweep goes on), and parse list parameters with :func:`parse_list`.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Callable

from testbed.modes import selected_modes
from testbed.nodeutil import ConfigError
from testbed.params import check_stream


def run_modes(ctx: Any, label: str, modes: tuple[str, ...] | None = None, extra_row: dict[str, Any] | None = None,
              spec_over: dict[str, Any] | None = None, **topo: Any) -> list[dict[str, Any]]:
    """Bring one topology up, stream once per mode (None: the modes parameter), record and return the rows."""
    rows = []
    with ctx.network(label, **topo) as net:
        for mode in modes or selected_modes(ctx.params):
            row = net.stream(ctx.spec(mode, **(spec_over or {})))
            row.update(extra_row or {})
            ctx.record(row)
            rows.append(row)
    return rows


def model_error(row: dict[str, Any]) -> float:
    """Relative difference between measured and model core bytes."""
    model = row["model_core_bytes"]
    return abs(row["core_bytes"] - model) / model if model else float(row["core_bytes"] != 0)


def check_rows(rows: list[dict[str, Any]], tolerance: float = 0.001) -> list[str]:
    """Problems in measured rows: incomplete delivery, corruption, model mismatch, capture drops."""
    problems = []
    for r in rows:
        where = f"{r['point']} {r['mode']}"
        if r["delivered_chunks"] != r["expected_chunks"]:
            problems.append(f"{where}: delivered {r['delivered_chunks']} of {r['expected_chunks']} chunks")
        if r["corrupt_chunks"]:
            problems.append(f"{where}: {r['corrupt_chunks']} corrupt chunks")
        if model_error(r) > tolerance:
            problems.append(f"{where}: core bytes {r['core_bytes']} vs model {r['model_core_bytes']} "
                            f"({100 * model_error(r):.3f} % off)")
        if r.get("capture_dropped"):
            problems.append(f"{where}: the capture dropped {r['capture_dropped']} packets")
        problems += check_links(r, where, tolerance)
    return problems


def check_links(r: dict[str, Any], where: str, tolerance: float = 0.001) -> list[str]:
    """Problems in a row's inter-domain columns: sum over links off the model, counters that disagree with captures."""
    problems = []
    model = r.get("model_interdomain_bytes")
    if model is not None and abs(r["interdomain_bytes"] - model) > tolerance * model:
        problems.append(f"{where}: inter-domain bytes {r['interdomain_bytes']} vs model {model}")
    if r.get("links_capture_mismatches"):
        problems.append(f"{where}: {r['links_capture_mismatches']} link counters differ from their captures")
    if r.get("links_capture_dropped"):
        problems.append(f"{where}: the link captures dropped {r['links_capture_dropped']} packets")
    return problems


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summary table: mode, k, j, gamma, core MB, model MB, savings %, delivered."""
    head = f"{'point':<10} {'mode':<14} {'k':>6} {'j':>4} {'gamma':>7} {'core MB':>10} {'model MB':>10} " \
           f"{'savings':>8} {'delivered':>17}"
    lines = [head, "-" * len(head)]
    unicast = {r["point"]: r["core_bytes"] for r in rows if r["mode"] == "unicast"}
    for r in rows:
        base = unicast.get(r["point"])
        saving = f"{100 * (1 - r['core_bytes'] / base):7.1f}%" if base and r["mode"] != "unicast" else f"{'-':>8}"
        lines.append(f"{r['point']:<10} {r['mode']:<14} {r['clients']:>6} {r['active_ases']:>4} {r['gamma']:>7.2f} "
                     f"{r['core_bytes'] / 1e6:>10.3f} {r['model_core_bytes'] / 1e6:>10.3f} {saving} "
                     f"{r['delivered_chunks']:>8}/{r['expected_chunks']:<8}")
    return "\n".join(lines)


def report(ctx: Any, rows: list[dict[str, Any]], tolerance: float = 0.001,
           extra_problems: list[str] | None = None) -> int:
    """Print the table and the verdict; return 0 if every row checks out, else 1.

    ``extra_problems`` (e.g. failed points of a sweep) are reported and fail the run too.
    """
    print(format_table(rows))
    problems = list(extra_problems or []) + check_rows(rows, tolerance)
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print(f"all {len(rows)} streams: every client received every chunk intact; measured core bytes equal "
              f"the model within {100 * tolerance:g} %")
    ctx.run.update(summary={"rows": len(rows), "problems": problems})
    return 1 if problems else 0


@dataclass
class Point:
    """One point of a sweep: a network (``topo`` values) streamed in ``modes`` at ``speed``."""

    label: str
    topo: dict[str, Any]
    speed: float
    row: dict[str, Any] = field(default_factory=dict)
    """Extra columns written into each of the point's rows."""
    modes: tuple[str, ...] | None = None
    """Modes streamed at this point (None: the experiment's modes parameter)."""
    chunks: int | None = None
    """Chunks per stream (None: the experiment's ``chunks`` parameter)."""

    @property
    def clients(self) -> int:
        """k at this point (from the topology values)."""
        from testbed.params import topo_params
        return topo_params(self.topo).total_clients


def parse_list(value: Any, name: str, kind: type = float, low: float | None = None,
               high: float | None = None) -> list:
    """A comma-separated ``--set`` list (or a single number) as a list of ``kind``; one-line ConfigError.

    Every item must lie within ``low``..``high`` (when given); the list must not be empty.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a comma-separated list of numbers, got '{value}'")
    items = list(value) if isinstance(value, (list, tuple)) else [v for v in str(value).split(",") if v.strip()]
    out = []
    for item in items:
        try:
            num = float(str(item).strip())
        except ValueError:
            raise ConfigError(f"{name} must be a comma-separated list of numbers, got '{value}'") from None
        if not math.isfinite(num):
            raise ConfigError(f"{name}: '{str(item).strip()}' is not a finite number")
        if kind is int:
            if num != int(num):
                raise ConfigError(f"{name} must list whole numbers, got '{item}'")
            num = int(num)
        if (low is not None and num < low) or (high is not None and num > high):
            raise ConfigError(f"{name}: {item} is outside {low:g}..{high:g}" if low is not None and high is not None
                              else f"{name}: {item} is out of range")
        out.append(num)
    if not out:
        raise ConfigError(f"{name} must list at least one value")
    return out


def reject_swept(params: dict[str, Any], defaults: dict[str, Any], keys: tuple[str, ...], hint: str) -> None:
    """ConfigError if the user set a topology key that this experiment's sweep sets itself."""
    for key in keys:
        if key in params and key not in defaults:
            raise ConfigError(f"{key} is set by this experiment's sweep; {hint}")


def chunk_rate(params: dict[str, Any]) -> float:
    """Chunks per second of the stream at speed 1 (bitrate / 8 / chunk_bytes)."""
    return params["bitrate"] / (8.0 * params["chunk_bytes"])


def stream_speed(params: dict[str, Any], datagrams_per_chunk: int) -> float:
    """The speed multiplier for a point: ``speed``, lowered so the source sends at most ``max_pps`` datagrams/s.

    ``datagrams_per_chunk`` is what the source sends per chunk (k for unicast, k + 1 for
    CoreCast; experiments pass k + 1 so both modes stream at the same speed).
    """
    limit = params["max_pps"] / (max(1, datagrams_per_chunk) * chunk_rate(params))
    return round(min(float(params["speed"]), limit), 4)


def check_common(params: dict[str, Any]) -> None:
    """The stream and LISP parameter checks (:func:`testbed.params.check_stream`), for a ``validate``
    that derives stream parameters; ``parse_experiment_params`` runs them for every experiment anyway."""
    check_stream(params)


def run_point(ctx: Any, point: Point) -> list[dict[str, Any]]:
    """Bring the point's network up and stream once per mode (rows recorded as they come)."""
    over: dict[str, Any] = {"speed": point.speed}
    if point.chunks is not None:
        over["chunks"] = point.chunks
    return run_modes(ctx, point.label, modes=point.modes, extra_row=point.row, spec_over=over, **point.topo)


def run_sweep(ctx: Any, points: list[Point],
              one: Callable[[Any, Point], list[dict[str, Any]]] = run_point) -> tuple[list[dict[str, Any]], list[str]]:
    """Run every point with a progress bar; return (rows, problems). A failed point is reported, not fatal."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for point in ctx.points(points):
        try:
            rows += one(ctx, point)
        except Exception as exc:  # one broken point must not lose the others
            reason = str(exc).splitlines()[0] if str(exc) else ""
            msg = f"{point.label}: {type(exc).__name__}: {reason}"
            print(f"POINT FAILED: {msg}", flush=True)
            problems.append(msg)
    return rows, problems
