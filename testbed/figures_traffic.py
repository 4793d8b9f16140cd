"""Figures of the paper's core-traffic experiments: demo and smoke, gamma, clients, deployment, distribution.

Registered in :data:`testbed.figures.PLOTTERS`; plotter signature and conventions
in :mod:`testbed.figures_common`. Columns each plotter reads are listed in docs/results.md.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from testbed import model
from testbed.figures_common import (COLORS, MODE_ORDER, FigureError, _chunk_bytes, _modes, _need, _per_chunk,
                                    _point_keys, _save, paired_savings)


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
