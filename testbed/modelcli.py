"""``corecast model``: every delivery mode's model at Internet scale, no packets (issue 16 item 5).

Points come from ``--set`` (uniform or Zipf audiences, as the experiments
spread them) or from ``--csv FILE`` (clients per AS, the format of
docs/model.md). Per point and mode it prints the bytes per chunk on the source
uplink, summed over the inter-domain links and on the busiest link, and the
savings against unicast; it writes ``model.csv`` (atomically) and, unless
``--no-plot``, ``model.png``/``model.pdf`` (:mod:`testbed.figures_model`) into
the output directory (default ``results/model/<UTC timestamp>``). The figure
marks what the emulation confirmed point by point (results/reference).

Every bad argument or CSV is a :class:`~testbed.nodeutil.ConfigError` (one
line, exit 2 from :func:`testbed.cli.main`).
"""

from __future__ import annotations

import csv
import math
import os
import time
from dataclasses import dataclass
from typing import Any

from testbed.modelcsv import read_clients_csv
from testbed.modelscale import (MAX_ASES, MAX_CLIENTS, ModeResult, Spread, capable_flags, evaluate, uniform_spread,
                                zipf_spread)
from testbed.modemodels import MODELS
from testbed.nodeutil import ConfigError
from testbed.params import check_out_dir, parse_sets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE = os.path.join(ROOT, "results", "reference")
DEFAULTS: dict[str, Any] = {"ases": 70_000, "gamma": "1,1.5,2,3,5,10,20,50,100,142", "distribution": "uniform",
                            "zipf_s": 1.0, "seed": 1, "capable": "all", "chunk_bytes": 1316, "modes": "all"}
KEYS = ("ases", "clients", "gamma", "distribution", "zipf_s", "seed", "capable", "chunk_bytes", "modes")
SPREAD_KEYS = ("ases", "clients", "gamma", "distribution", "zipf_s", "seed")
MAX_POINTS = 200
MAX_CHUNK = 65_000
CSV_COLUMNS = ("point", "source", "mode", "ases", "active_ases", "capable_ases", "clients", "gamma", "distribution",
               "zipf_s", "seed", "chunk_bytes", "uplink_bytes", "uplink_packets", "interdomain_bytes",
               "max_link_bytes", "savings", "savings_interdomain", "confirmed")
"""model.csv's columns; bytes and packets are per chunk (docs/model.md)."""


@dataclass(frozen=True)
class Point:
    """One audience to evaluate: its spread and how it was made."""

    spread: Spread
    distribution: str
    zipf_s: float | None = None
    seed: int | None = None
    source: str = "set"


def _fmt(x: float) -> str:
    """1,000,000 for whole numbers, 0.5 or 1e-06 otherwise."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _numbers(value: Any, key: str, whole: bool, low: float, high: float) -> list:
    """A number or a comma-separated list of them, each within ``low..high`` (whole numbers if ``whole``)."""
    items = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value).split(",")
    out = []
    for item in items:
        try:
            num = float(item) if not isinstance(item, (int, float)) else item
        except ValueError:
            raise ConfigError(f"{key} must be a number or a list like 1,2,5, got '{value}'") from None
        if not math.isfinite(num) or (whole and num != int(num)):
            raise ConfigError(f"{key} must be {'whole numbers' if whole else 'finite numbers'}, got '{item}'")
        if not low <= num <= high:
            raise ConfigError(f"{key} must be within {_fmt(low)}..{_fmt(high)}, got {_fmt(num)}")
        out.append(int(num) if whole else float(num))
    if len(set(out)) != len(out):
        raise ConfigError(f"{key} lists a value twice")
    return out


def _capable_fraction(value: Any) -> float:
    if value is True or value == "all":
        return 1.0
    if value is False or value is None or value == "none":  # --set capable=none parses to None
        return 0.0
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise ConfigError(f"capable must be all, none or a fraction within 0..1, got '{value}'")


def _modes(value: Any) -> tuple[str, ...]:
    if value == "all":
        return tuple(MODELS)
    names = [m.strip() for m in str(value).split(",") if m.strip()]
    bad = [m for m in names if m not in MODELS]
    if bad or not names:
        raise ConfigError(f"unknown mode '{bad[0] if bad else value}' (choose from {', '.join(MODELS)})")
    return tuple(["unicast"] + [m for m in dict.fromkeys(names) if m != "unicast"])


def build_points(sets: dict[str, Any], csv_path: str | None) -> tuple[list[Point], int, tuple[str, ...]]:
    """Validate the ``--set`` values (and ``--csv``) into (points, chunk bytes, modes); ConfigError otherwise."""
    unknown = sorted(set(sets) - set(KEYS))
    if unknown:
        raise ConfigError(f"corecast model has no parameter '{unknown[0]}' (known: {', '.join(KEYS)})")
    chunk = _numbers(sets.get("chunk_bytes", DEFAULTS["chunk_bytes"]), "chunk_bytes", True, 1, MAX_CHUNK)
    if len(chunk) != 1:
        raise ConfigError("chunk_bytes takes one value")
    modes = _modes(sets.get("modes", DEFAULTS["modes"]))
    if csv_path is not None:
        clash = [k for k in SPREAD_KEYS if k in sets]
        if clash:
            raise ConfigError(f"--csv gives the clients per AS: drop --set {clash[0]}")
        counts, capable = read_clients_csv(csv_path, MAX_ASES, MAX_CLIENTS)
        if capable is None:
            capable = capable_flags(len(counts), _capable_fraction(sets.get("capable", DEFAULTS["capable"])))
        elif "capable" in sets:
            raise ConfigError(f"{csv_path} has a capable column: drop --set capable")
        return [Point(Spread(counts, capable), "csv", source=os.path.basename(csv_path))], chunk[0], modes
    if "clients" in sets and "gamma" in sets:
        raise ConfigError("give clients= (clients in all) or gamma= (clients per AS), not both")
    dist = str(sets.get("distribution", DEFAULTS["distribution"]))
    if dist not in ("uniform", "zipf"):
        raise ConfigError(f"distribution must be uniform or zipf (a CSV gives any other spread), got '{dist}'")
    zipf_s = _numbers(sets.get("zipf_s", DEFAULTS["zipf_s"]), "zipf_s", False, 1e-6, 10.0)
    seed = _numbers(sets.get("seed", DEFAULTS["seed"]), "seed", True, 0, 2**32 - 1)
    if len(zipf_s) != 1 or len(seed) != 1:
        raise ConfigError("zipf_s and seed take one value each")
    if dist == "uniform" and ("zipf_s" in sets or "seed" in sets):
        raise ConfigError("zipf_s and seed need distribution=zipf")
    fraction = _capable_fraction(sets.get("capable", DEFAULTS["capable"]))
    ases_list = _numbers(sets.get("ases", DEFAULTS["ases"]), "ases", True, 1, MAX_ASES)
    pairs: list[tuple[int, int]] = []
    if "clients" in sets:
        totals = _numbers(sets["clients"], "clients", True, 0, MAX_CLIENTS)
        pairs = [(a, k) for a in ases_list for k in totals]
    else:
        gammas = _numbers(sets.get("gamma", DEFAULTS["gamma"]), "gamma", False, 0.0, MAX_CLIENTS)
        for a in ases_list:
            for g in gammas:
                k = round(g * a)
                if k > MAX_CLIENTS:
                    raise ConfigError(f"gamma {g:g} with {a:,} ASes is {k:,} clients: at most {MAX_CLIENTS:,}")
                pairs.append((a, k))
    if len(pairs) > MAX_POINTS:
        raise ConfigError(f"{len(pairs)} points: at most {MAX_POINTS} per run")
    points = []
    for a, k in pairs:
        counts = uniform_spread(k, a) if dist == "uniform" else zipf_spread(k, a, zipf_s[0], seed[0])
        points.append(Point(Spread(counts, capable_flags(a, fraction)), dist,
                            zipf_s[0] if dist == "zipf" else None, seed[0] if dist == "zipf" else None))
    return points, chunk[0], modes


def emulated_points(reference: str = REFERENCE) -> list[dict[str, Any]]:
    """The points the emulation measured with every chunk delivered and core bytes equal to the model.

    Read from every ``measurements.csv`` under ``reference`` (``scale/j1000g100/`` too; columns experiment, point, mode,
    ases, clients, chunks, core_bytes, model_core_bytes, delivered_chunks,
    expected_chunks); rows of modes the model does not know, or that cannot be
    read, are left out. Each: experiment, point, mode, ases, clients,
    capable_ases, chunk_bytes, ``even`` (every AS has clients, counts differ by
    at most one: a uniform spread) and ``core_bytes`` per chunk (measured).
    """
    out: list[dict[str, Any]] = []
    if not os.path.isdir(reference):
        return out
    paths = sorted(os.path.join(d, "measurements.csv") for d, _sub, files in os.walk(reference)
                   if "measurements.csv" in files)
    for path in paths:
        name = os.path.basename(os.path.dirname(path))
        try:
            with open(path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    try:
                        exp, chunks = int(row["expected_chunks"]), int(row["chunks"])
                        if (row["mode"] in MODELS and exp > 0 and chunks > 0 and int(row["delivered_chunks"]) == exp
                                and int(row["core_bytes"]) == int(row["model_core_bytes"])):
                            spread = [int(n) for n in str(row.get("clients_per_as") or "").split()]
                            out.append({"experiment": row.get("experiment", name), "point": row.get("point", ""),
                                        "mode": row["mode"], "ases": int(row["ases"]), "clients": int(row["clients"]),
                                        "capable_ases": int(row.get("capable_ases") or 0),
                                        "chunk_bytes": int(row.get("chunk_bytes") or 0),
                                        "even": bool(spread) and min(spread) > 0 and max(spread) - min(spread) <= 1,
                                        "spread": tuple(spread),
                                        "core_bytes": int(row["core_bytes"]) / chunks})
                    except (KeyError, TypeError, ValueError):
                        continue
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    return out


def confirmed_points(emulated: list[dict[str, Any]]) -> set[tuple[str, tuple[int, ...], int]]:
    """(mode, clients per AS, capable ASes) of :func:`emulated_points`: what a model row must match to count."""
    return {(e["mode"], e["spread"], e["capable_ases"]) for e in emulated if e["spread"]}


def rows_for(index: int, point: Point, chunk: int, results: list[ModeResult],
             confirmed: set[tuple[str, tuple[int, ...], int]]) -> list[dict[str, Any]]:
    """model.csv rows of one point (savings against unicast, which is always ``results[0]``).

    ``confirmed`` is true where the emulation measured this mode with the very
    same clients per AS and as many capable ASes (:func:`confirmed_points`).
    """
    uni = results[0]
    sp = point.spread
    small = sp.ases <= max((len(c[1]) for c in confirmed), default=0)
    spread = tuple(sp.counts.tolist()) if small else ()
    rows = []
    for r in results:
        rows.append({
            "point": index, "source": point.source, "mode": r.mode, "ases": sp.ases, "active_ases": sp.active_ases,
            "capable_ases": sp.capable_ases, "clients": sp.clients, "gamma": round(sp.gamma, 6),
            "distribution": point.distribution, "zipf_s": "" if point.zipf_s is None else point.zipf_s,
            "seed": "" if point.seed is None else point.seed, "chunk_bytes": chunk,
            "uplink_bytes": r.uplink_bytes, "uplink_packets": r.uplink_packets,
            "interdomain_bytes": r.interdomain_bytes, "max_link_bytes": r.max_link_bytes,
            "savings": round(1 - r.uplink_bytes / uni.uplink_bytes, 6) if uni.uplink_bytes else 0.0,
            "savings_interdomain": (round(1 - r.interdomain_bytes / uni.interdomain_bytes, 6)
                                    if uni.interdomain_bytes else 0.0),
            "confirmed": bool(spread) and (r.mode, spread, sp.capable_ases) in confirmed,
        })
    return rows


def write_csv_atomic(path: str, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` through a temporary file in the same directory and a rename."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _print_point(rows: list[dict[str, Any]]) -> None:
    r0 = rows[0]
    print(f"point {r0['point']}: {r0['ases']:,} client ASes ({r0['active_ases']:,} with clients, "
          f"{r0['capable_ases']:,} capable), {r0['clients']:,} clients, gamma {r0['gamma']:,.2f}, "
          f"{r0['distribution']}{' ' + r0['source'] if r0['distribution'] == 'csv' else ''}, "
          f"chunk {r0['chunk_bytes']} B, star core")
    print(f"  {'mode':<15}{'uplink B/chunk':>17}{'inter-domain B/chunk':>22}{'busiest link B/chunk':>22}"
          f"{'savings':>9}  emulated")
    for r in rows:
        sav = "-" if r["mode"] == "unicast" else f"{100 * r['savings']:.1f}%"
        print(f"  {r['mode']:<15}{r['uplink_bytes']:>17,}{r['interdomain_bytes']:>22,}{r['max_link_bytes']:>22,}"
              f"{sav:>9}  {'yes' if r['confirmed'] else 'no'}")


def model_command(set_items: list[str], csv_path: str | None = None, out: str | None = None, plot: bool = True,
                  reference: str = REFERENCE) -> int:
    """Evaluate, print, write model.csv (and the figure); 0 on success. ConfigError for bad input."""
    t0 = time.monotonic()
    sets = parse_sets(set_items)
    points, chunk, modes = build_points(sets, csv_path)
    out = out or os.path.join("results", "model", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    check_out_dir(out)
    emulated = emulated_points(reference)
    confirmed = confirmed_points(emulated)
    rows: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        rows += rows_for(i, point, chunk, evaluate(point.spread, chunk, modes), confirmed)
        _print_point(rows[-len(modes):])
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.csv")
    write_csv_atomic(path, rows)
    print(f"model: {len(points)} point(s) x {len(modes)} modes in {time.monotonic() - t0:.2f} s; table: {path}")
    if plot:
        from testbed.figures_model import plot_model
        for fig in plot_model(rows, emulated, out):
            print(f"figure: {fig}")
    return 0

