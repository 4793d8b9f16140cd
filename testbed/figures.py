"""Figures: one plotting function per experiment, the topology drawing, and ``corecast figures``.

Every plotter has the signature ``plot(df, run, outdir) -> list[str]``: ``df`` is
the run's measurements.csv as a pandas DataFrame, ``run`` its run.json dict,
``outdir`` the run's figures/ directory; it writes ``<experiment>.png`` and
``<experiment>.pdf`` and returns their paths. Matplotlib is used through
``matplotlib.figure.Figure`` (the Agg canvas), never pyplot: no display, no
global state. Columns each plotter reads are listed in docs/results.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import textwrap
from typing import Callable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from testbed import model
from testbed.results import MEASUREMENTS_CSV, RUN_JSON, RunDir, find_runs
from testbed.topodraw import draw_topology  # re-exported: figures.draw_topology

COLORS = {"unicast": "#c0392b", "corecast": "#2471a3"}
MODE_ORDER = ("unicast", "corecast")
DEFAULT_RESULTS = os.path.join("results", "reference")
TOPOLOGY_JSON = "topology.json"
"""A run directory file holding a :func:`draw_topology` graph; drawn by :func:`plot_run`."""


class FigureError(ValueError):
    """The data cannot make this figure (missing columns, no rows); one line for the user."""


def _need(df: pd.DataFrame, *cols: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise FigureError(f"measurements lack column(s) {', '.join(missing)}")
    if df.empty:
        raise FigureError("no measured points")


def _save(fig: Figure, outdir: str, stem: str) -> list[str]:
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = os.path.join(outdir, f"{stem}.{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=meta)
        paths.append(path)
    return paths


def _per_chunk(df: pd.DataFrame, col: str) -> pd.Series:
    chunks = pd.to_numeric(df["chunks"], errors="coerce")
    return pd.to_numeric(df[col], errors="coerce") / chunks.where(chunks > 0)


def _modes(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["mode"].astype(str)))
    return [m for m in MODE_ORDER if m in present] + [m for m in present if m not in MODE_ORDER]


def _chunk_bytes(df: pd.DataFrame) -> int:
    vals = pd.to_numeric(df.get("chunk_bytes"), errors="coerce").dropna() if "chunk_bytes" in df else []
    return int(vals.median()) if len(vals) else 1316


def paired_savings(df: pd.DataFrame, keys: list[str], corecast_keys: tuple[str, ...] = ()) -> pd.DataFrame:
    """Measured and model savings per point: CoreCast rows against the unicast rows with the same ``keys``.

    Returns ``keys + corecast_keys + [savings, model_savings]`` (per-chunk bytes, so runs
    of different lengths compare). Rows without a unicast partner are left out.
    """
    d = df.assign(_m=_per_chunk(df, "core_bytes"), _mm=_per_chunk(df, "model_core_bytes"))
    uni = d[d["mode"] == "unicast"].groupby(keys)[["_m", "_mm"]].mean()
    cc = d[d["mode"] == "corecast"].groupby(keys + list(corecast_keys))[["_m", "_mm"]].mean().reset_index()
    both = cc.merge(uni.reset_index(), on=keys, suffixes=("_c", "_u"))
    both["savings"] = 1.0 - both["_m_c"] / both["_m_u"]
    both["model_savings"] = 1.0 - both["_mm_c"] / both["_mm_u"]
    return both[keys + list(corecast_keys) + ["savings", "model_savings"]]


def _point_keys(df: pd.DataFrame, *candidates: str) -> list[str]:
    return [c for c in candidates if c in df.columns]


def plot_demo(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Bar chart: core MB measured vs model for each mode, savings annotated (``<experiment>.png``, also for smoke)."""
    _need(df, "mode", "core_bytes", "model_core_bytes")
    modes = _modes(df)
    meas = [pd.to_numeric(df[df["mode"] == m]["core_bytes"]).sum() / 1e6 for m in modes]
    mod = [pd.to_numeric(df[df["mode"] == m]["model_core_bytes"]).sum() / 1e6 for m in modes]
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    x = np.arange(len(modes))
    ax.bar(x - 0.2, meas, 0.4, color=[COLORS.get(m, "gray") for m in modes], label="measured")
    ax.bar(x + 0.2, mod, 0.4, color="white", edgecolor=[COLORS.get(m, "gray") for m in modes],
           hatch="//", label="model")
    for xi, v in zip(x, meas):
        ax.annotate(f"{v:.2f} MB", (xi - 0.2, v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, modes)
    ax.set_ylabel("core traffic (MB, IP total length)")
    if "unicast" in modes and "corecast" in modes:
        u, c = meas[modes.index("unicast")], meas[modes.index("corecast")]
        mu, mc = mod[modes.index("unicast")], mod[modes.index("corecast")]
        if u > 0 and mu > 0:
            ax.text(0.98, 0.62, f"CoreCast saves {100 * (1 - c / u):.1f} %\n(model {100 * (1 - mc / mu):.1f} %)",
                    transform=ax.transAxes, ha="right", va="top",
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    row = df.iloc[0]
    stem = str(run.get("experiment") or "demo")
    ax.set_title(f"{stem}: k={row.get('clients', '?')} clients in j={row.get('ases', '?')} ASes")
    ax.legend(loc="upper right")
    return _save(fig, outdir, stem)


def plot_gamma(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Core bytes per chunk and per client AS against gamma (log x), model curves and measured points."""
    _need(df, "mode", "gamma", "clients", "chunks", "core_bytes", "model_core_bytes")
    P = _chunk_bytes(df)
    d = df.assign(_j=pd.to_numeric(df["clients"]) / pd.to_numeric(df["gamma"]).where(df["gamma"] > 0))
    d = d.assign(_y=_per_chunk(d, "core_bytes") / d["_j"])
    gmax = max(100.0, float(pd.to_numeric(d["gamma"]).max()))
    gs = np.logspace(0, math.log10(gmax), 200)
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    for mode in MODE_ORDER:
        ys = [model.core_bytes_per_chunk_uniform(mode, g, P) / 1e3 for g in gs]
        ax.plot(gs, ys, color=COLORS[mode], lw=1.5, label=f"{mode} (model)")
        pts = d[d["mode"] == mode]
        ax.plot(pts["gamma"], pts["_y"] / 1e3, "o", color=COLORS[mode], mfc="none", ms=7,
                label=f"{mode} (measured)")
    g_star = model.break_even_gamma(P)
    for a in (ax, ax2):
        a.axvline(g_star, color="0.4", ls="--", lw=1)
        a.set_xscale("log")
        a.set_xlabel("grouping coefficient gamma = k / j")
        a.grid(True, which="both", alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("core kB per chunk per client AS")
    ax.set_title(f"core bytes per chunk (P = {P} B)")
    ax.legend(fontsize=8)
    ax2.plot(gs, [100 * model.savings_uniform(g, P) for g in gs], color="k", lw=1.5, label="model")
    ax2.axhline(0, color="0.4", lw=1)
    ax2.axhline(100 * model.asymptotic_savings(P), color="0.6", ls=":", lw=1, label="limit 1 - 68/(64+P)")
    if {"unicast", "corecast"} <= set(d["mode"]):
        s = paired_savings(d, _point_keys(d, "gamma", "clients", "chunk_bytes", "distribution"))
        ax2.plot(s["gamma"], 100 * s["savings"], "o", color=COLORS["corecast"], mfc="none", ms=7, label="measured")
        neg = s[s["savings"] < 0].sort_values("gamma")
        if not neg.empty:  # the paper's point: gamma = 1 is detrimental
            r = neg.iloc[0]
            ax2.annotate(f"measured at gamma = {r['gamma']:g}: {100 * r['savings']:.1f} % (detrimental)",
                         (r["gamma"], 100 * r["savings"]), xytext=(12, -3), textcoords="offset points",
                         fontsize=8, va="center", color=COLORS["unicast"])
    ax2.annotate(f"break-even gamma = {g_star:.3f}", (g_star, 0), xytext=(25, 30), textcoords="offset points",
                 fontsize=8, arrowprops={"arrowstyle": "->", "color": "0.4"})
    ax2.set_ylim(min(-10.0, 100 * model.savings_uniform(1, P) - 5), 100)
    ax2.set_ylabel("CoreCast savings over unicast (%)")
    ax2.set_title("savings")
    ax2.legend(fontsize=8, loc="center right")
    return _save(fig, outdir, "gamma")


def _traffic_vs(ax, df: pd.DataFrame, x: pd.Series, xlabel: str) -> None:
    """Measured points and model lines of core kB per chunk against ``x``, one colour per mode."""
    d = df.assign(_x=x, _y=_per_chunk(df, "core_bytes") / 1e3, _m=_per_chunk(df, "model_core_bytes") / 1e3)
    for mode in _modes(d):
        pts = d[d["mode"] == mode].sort_values("_x")
        line = pts.groupby("_x")["_m"].mean()
        ax.plot(line.index, line.to_numpy(), "-", color=COLORS.get(mode, "gray"), lw=1.5, label=f"{mode} (model)")
        ax.plot(pts["_x"], pts["_y"], "o", color=COLORS.get(mode, "gray"), mfc="none", ms=7,
                label=f"{mode} (measured)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("core kB per chunk")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def plot_clients(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Core traffic per chunk against the number of clients k at fixed j, both modes."""
    _need(df, "mode", "clients", "ases", "chunks", "core_bytes", "model_core_bytes")
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.add_subplot()
    _traffic_vs(ax, df, pd.to_numeric(df["clients"]), "clients k")
    js = sorted(set(pd.to_numeric(df["ases"]).astype(int)))
    ax.set_title(f"core traffic against k (j = {', '.join(map(str, js))} ASes)")
    return _save(fig, outdir, "clients")


def plot_deployment(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Core bytes per chunk and savings against the fraction of CoreCast-capable ASes."""
    _need(df, "mode", "ases", "capable_ases", "chunks", "core_bytes", "model_core_bytes")
    frac = 100 * pd.to_numeric(df["capable_ases"]) / pd.to_numeric(df["ases"])
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    cc = df["mode"] != "unicast"
    _traffic_vs(ax, df[cc], frac[cc], "CoreCast-capable ASes (%)")
    uni = df[~cc]
    if not uni.empty:  # unicast does not depend on capability: a level line at its measured mean
        ax.axhline(_per_chunk(uni, "core_bytes").mean() / 1e3, color=COLORS["unicast"], lw=1.5,
                   label="unicast (measured, any deployment)")
        ax.legend(fontsize=8)
    ax.set_title("incremental deployment: core traffic")
    d = df.assign(_frac=frac)
    if {"unicast", "corecast"} <= set(d["mode"]):
        s = paired_savings(d, _point_keys(d, "clients", "ases", "chunk_bytes", "distribution"), ("_frac",))
        s = s.sort_values("_frac")
        ax2.plot(s["_frac"], 100 * s["model_savings"], "-", color="k", label="model")
        ax2.plot(s["_frac"], 100 * s["savings"], "o", color=COLORS["corecast"], mfc="none", ms=7, label="measured")
    ax2.set_xlabel("CoreCast-capable ASes (%)")
    ax2.set_ylabel("CoreCast savings over unicast (%)")
    ax2.set_title("savings grow with deployment")
    ax2.grid(True, alpha=0.3)
    ax2.legend(fontsize=8)
    return _save(fig, outdir, "deployment")


def plot_distribution(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Uniform vs Zipf spread of clients: core kB per chunk per mode and the savings, grouped bars."""
    key = next((c for c in ("distribution", "point") if c in df.columns), None)
    if key is None:
        raise FigureError("measurements lack a 'distribution' column")
    _need(df, "mode", "chunks", "core_bytes", "model_core_bytes")
    d = df.assign(_y=_per_chunk(df, "core_bytes") / 1e3, _m=_per_chunk(df, "model_core_bytes") / 1e3)
    groups = list(dict.fromkeys(d[key].astype(str)))
    d[key] = d[key].astype(str)
    modes = _modes(d)
    fig = Figure(figsize=(11, 4.2))
    ax, ax2 = fig.subplots(1, 2)
    x = np.arange(len(groups))
    w = 0.8 / max(1, len(modes))
    for i, mode in enumerate(modes):
        sub = d[d["mode"] == mode].groupby(key)[["_y", "_m"]].mean().reindex(groups)
        pos = x - 0.4 + w * (i + 0.5)
        ax.bar(pos, sub["_y"], w, color=COLORS.get(mode, "gray"), label=f"{mode} (measured)")
        ax.plot(pos, sub["_m"], "_", color="k", ms=18, mew=2, label="model" if i == 0 else None)
    ticks = [textwrap.fill(str(g), 10) for g in groups]  # long group names on several lines
    ax.set_xticks(x, ticks)
    ax.set_ylabel("core kB per chunk")
    ax.set_title("client spread: core traffic")
    ax.set_ylim(0, 1.35 * max(float(np.nanmax(d[["_y", "_m"]].to_numpy())), 1e-9))
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    if {"unicast", "corecast"} <= set(modes):
        s = paired_savings(d, [key] + _point_keys(d, "clients", "ases", "capable_ases", "chunk_bytes"))
        s = s.groupby(key)[["savings", "model_savings"]].mean().reindex(groups)
        ax2.bar(x - 0.2, 100 * s["savings"], 0.4, color=COLORS["corecast"], label="measured")
        ax2.bar(x + 0.2, 100 * s["model_savings"], 0.4, color="white", edgecolor=COLORS["corecast"],
                hatch="//", label="model")
        for xi, v in zip(x, s["savings"]):
            if pd.notna(v):
                ax2.annotate(f"{100 * v:.1f} %", (xi - 0.2, 100 * v), ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(x, ticks)
    ax2.set_ylim(min(0.0, ax2.get_ylim()[0]), 115)
    ax2.set_ylabel("CoreCast savings over unicast (%)")
    ax2.set_title("savings at equal k and j")
    ax2.legend(fontsize=8, loc="upper center", ncol=2)
    return _save(fig, outdir, "distribution")


def plot_load(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Router load figure: see :mod:`testbed.figures_load` (imported on use)."""
    from testbed.figures_load import plot_load as plot
    return plot(df, run, outdir)


def plot_join(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Channel-change delay figure: see :mod:`testbed.figures_load` (imported on use)."""
    from testbed.figures_load import plot_join as plot
    return plot(df, run, outdir)


PLOTTERS: dict[str, Callable[[pd.DataFrame, dict, str], list[str]]] = {
    "demo": plot_demo,
    "smoke": plot_demo,
    "gamma": plot_gamma,
    "clients": plot_clients,
    "deployment": plot_deployment,
    "distribution": plot_distribution,
    "load": plot_load,
    "join": plot_join,
}
"""Experiment name -> plotter. The lead's experiments may register more (e.g. ``topology``)."""


def plot_attack(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """The attack experiment's figure: see :mod:`testbed.figures_attack` (imported on use)."""
    from testbed.figures_attack import plot_attack as plot
    return plot(df, run, outdir)


PLOTTERS["attack"] = plot_attack


def _plot_p2p(name: str) -> Callable[[pd.DataFrame, dict, str], list[str]]:
    """A P2P experiment's figure: see :mod:`testbed.figures_p2p` (imported on use)."""
    def plot(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
        import testbed.figures_p2p as f
        return getattr(f, f"plot_{name.replace('-', '_')}")(df, run, outdir)
    return plot


for _name in ("p2p", "p2p-upload", "channel-change"):
    PLOTTERS[_name] = _plot_p2p(_name)


def _plot_compare(name: str) -> Callable[[pd.DataFrame, dict, str], list[str]]:
    """The compare or loss experiment's figure: see :mod:`testbed.figures_compare` (imported on use)."""
    def plot(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
        import testbed.figures_compare as f
        return getattr(f, f"plot_{name}")(df, run, outdir)
    return plot


for _name in ("compare", "loss"):
    PLOTTERS[_name] = _plot_compare(_name)


def plot_batch(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """The batch experiment's figure (issue 15): see :mod:`testbed.figures_batch` (imported on use)."""
    from testbed.figures_batch import plot_batch as plot
    return plot(df, run, outdir)


PLOTTERS["batch"] = plot_batch


def plot_scale(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """The scale experiment's figure (issue 16): see :mod:`testbed.figures_scale` (imported on use)."""
    from testbed.figures_scale import plot_scale as plot
    return plot(df, run, outdir)


PLOTTERS["scale"] = plot_scale


def plot_run(path: str) -> list[str]:
    """Regenerate the figures of one run directory; FigureError if it cannot.

    A ``topology.json`` in the run directory (a :func:`draw_topology` graph, as the
    topology experiment or any other may store) is drawn to figures/topology.*;
    then the experiment's plotter, if any, draws measurements.csv.
    """
    run = RunDir.open(path)
    exp = str(run.info.get("experiment", ""))
    written: list[str] = []
    topo = os.path.join(path, TOPOLOGY_JSON)
    if os.path.isfile(topo):
        try:
            with open(topo) as fh:
                graph = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise FigureError(f"unreadable {TOPOLOGY_JSON}: {exc}") from None
        if not isinstance(graph, dict):
            raise FigureError(f"{TOPOLOGY_JSON} must hold a JSON object")
        written += draw_topology(graph, os.path.join(run.figures, "topology"))
    plotter = PLOTTERS.get(exp)
    if plotter is None:
        if written:
            return written
        raise FigureError(f"no plot function for experiment {exp!r}")
    csv_path = os.path.join(path, MEASUREMENTS_CSV)
    if not os.path.isfile(csv_path):
        raise FigureError("no measurements.csv")
    try:
        df = pd.read_csv(csv_path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise FigureError(f"unreadable measurements.csv: {exc}") from None
    return written + plotter(df, run.info, run.figures)


render_run = plot_run
"""Alias of :func:`plot_run` (the name the experiment engine uses)."""


def figures_command(results_dir: str | None = None) -> int:
    """``corecast figures [RESULTS_DIR]``: regenerate every run's figures under ``results_dir``.

    Prints one line per figure written and one per skipped run. Returns 0 if all
    runs with a plotter were plotted, 1 if some could not be, 2 if the directory
    does not exist, is a file or holds no run (one-line error on stderr).
    """
    root = results_dir or DEFAULT_RESULTS
    if not os.path.isdir(root):
        what = "not a directory" if os.path.exists(root) else "no such directory"
        print(f"corecast figures: {what}: {root}", file=sys.stderr)
        return 2
    runs = [r for r in find_runs(root) if os.path.isfile(os.path.join(r, RUN_JSON))]
    if not runs:
        print(f"corecast figures: no run directories (run.json) under {root}", file=sys.stderr)
        return 2
    code = 0
    for path in runs:
        try:
            for written in plot_run(path):
                print(written)
        except Exception as exc:  # one bad run must not stop the others
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"skipped {path}: {reason}")
            if not (isinstance(exc, FigureError) and reason.startswith("no plot function")):
                code = 1
    return code


__all__ = ["PLOTTERS", "FigureError", "draw_topology", "figures_command", "paired_savings", "plot_run"] + \
    [f"plot_{name}" for name in PLOTTERS]
