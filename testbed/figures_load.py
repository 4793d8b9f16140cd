"""Figures of the router-load (``load``) and channel-change (``join``) experiments.

Registered in :data:`testbed.figures.PLOTTERS`; same plotter signature
(``plot(df, run, outdir) -> list[str]``, see :mod:`testbed.figures_common`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from testbed.figures_common import COLORS, FigureError, _modes, _need, _save


def _load_columns(df: pd.DataFrame) -> tuple[pd.DataFrame, str | None, list[str], list[str], list[str]]:
    """The load figure's inputs: (frame with derived rates, duration column, rate, CPU and memory columns).

    Rates are the ``*_pps`` columns, or else derived from the stream duration
    (``duration_s`` or ``stream_s``): ITR to core = core_packets / s, ETRs to
    clients = delivered_chunks / s. CPU: columns with ``cpu`` ending in ``_s``
    (``cpu_itr_s``, ``itr_cpu_s``...). Memory: columns with ``rss`` (KiB).
    """
    dur = next((c for c in ("duration_s", "stream_s") if c in df.columns), None)
    pps = [c for c in df.columns if c.endswith("_pps")]
    d = df
    if not pps and dur is not None:
        secs = pd.to_numeric(df[dur], errors="coerce").where(lambda x: x > 0)
        d = df.assign(**{"ITR to core pps": pd.to_numeric(df["core_packets"], errors="coerce") / secs,
                         "ETRs to clients pps": pd.to_numeric(df["delivered_chunks"], errors="coerce") / secs})
        pps = ["ITR to core pps", "ETRs to clients pps"]
    cpu = [c for c in df.columns if "cpu" in c and c.endswith("_s")]
    rss = [c for c in df.columns if "rss" in c]
    return d, dur, pps, cpu, rss


def plot_load(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Router load: packets/s and CPU against k; resident memory against stream length.

    Rows with ``sweep == "length"`` feed the memory panel only, other rows the k
    panels (without a ``sweep`` column all rows feed all panels).
    """
    _need(df, "mode", "clients")
    d, dur, pps, cpu, rss = _load_columns(df)
    if "sweep" in d.columns:
        by_k = d[d["sweep"].astype(str) != "length"]
        by_len = d[d["sweep"].astype(str) == "length"]
    else:
        by_k = by_len = d
    fig = Figure(figsize=(15, 4.2))
    axes = fig.subplots(1, 3)
    styles = ["-o", "--s", ":^", "-.v", "-x", "--d"]

    def series(ax, data, xcol, cols, scale, ylabel, title):
        drawn = False
        for mode in _modes(data) if not data.empty and xcol in data.columns else []:
            pts = data[data["mode"] == mode]
            for st, col in zip(styles, cols):
                g = pd.to_numeric(pts[col], errors="coerce").groupby(pts[xcol]).mean()
                g = (g * (scale(pts) if callable(scale) else scale)).dropna()
                if not g.empty:
                    ax.plot(g.index, g.to_numpy(), st, color=COLORS.get(mode, "gray"), mfc="none",
                            label=f"{mode}: {col}")
                    drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="0.5")
        else:
            ax.legend(fontsize=7)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, alpha=0.3)

    series(axes[0], by_k, "clients", pps, 1.0, "packets per second", "router packet rate")
    if dur is not None:
        def cpu_pct(pts: pd.DataFrame) -> pd.Series:
            return 100.0 / pd.to_numeric(pts[dur], errors="coerce").groupby(pts["clients"]).mean()
        series(axes[1], by_k, "clients", cpu, cpu_pct, "CPU (% of one core)", "CPU time / stream time")
    else:
        series(axes[1], by_k, "clients", cpu, 1.0, "CPU seconds", "CPU time")
    for a in axes[:2]:
        a.set_xlabel("clients k")
    xlen = "chunks" if "chunks" in by_len.columns else dur
    series(axes[2], by_len, xlen, rss, 1 / 1024, "resident memory (MiB)", "memory against stream length")
    axes[2].set_xlabel("stream length (chunks)" if xlen == "chunks" else "stream length (s)")
    top = max((pd.to_numeric(by_len[c], errors="coerce").max() / 1024 for c in rss if c in by_len), default=0.0)
    axes[2].set_ylim(0, 1.4 * top if top == top and top > 0 else None)  # room for the legend above flat lines
    lens = pd.to_numeric(by_len[xlen], errors="coerce").dropna() if xlen in by_len else pd.Series(dtype=float)
    if len(lens) and lens.min() > 0 and lens.max() / lens.min() >= 10:
        axes[2].set_xscale("log")
        axes[2].xaxis.set_minor_formatter(NullFormatter())
        ticks = sorted(lens.unique())
        axes[2].set_xticks(ticks, [f"{v:,.0f}" for v in ticks])
    return _save(fig, outdir, "load")


def plot_join(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Channel-change delay (join to first chunk), cold vs warm map-cache, both modes: box plots with points.

    With a ``transit_s`` column (first chunk sent -> arrived), a second panel shows that part
    alone: the pacer's wait for the next chunk no longer hides the map-cache miss.
    """
    _need(df, "mode", "cache", "join_delay_s")
    d = df.assign(_d=pd.to_numeric(df["join_delay_s"], errors="coerce")).dropna(subset=["_d"])
    if d.empty:
        raise FigureError("no join delays measured")
    caches = [c for c in ("cold", "warm") if c in set(d["cache"])] + \
        [c for c in dict.fromkeys(d["cache"]) if c not in ("cold", "warm")]
    modes = _modes(d)
    panels = [("_d", "join to first chunk (ms)", "channel-change delay (P2P systems: 10-20 s)")]
    if "transit_s" in d.columns and pd.to_numeric(d["transit_s"], errors="coerce").notna().any():
        d = d.assign(_t=pd.to_numeric(d["transit_s"], errors="coerce"))
        panels.append(("_t", "first chunk sent to received (ms)", "network part: map-cache miss vs hit"))
    fig = Figure(figsize=(7 * len(panels), 4.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (col, ylabel, title) in zip(axes, panels):
        labels, pos = [], []
        rng = np.random.default_rng(0)
        for gi, cache in enumerate(caches):
            for mi, mode in enumerate(modes):
                vals = (d[(d["cache"] == cache) & (d["mode"] == mode)][col].dropna() * 1e3).to_numpy()
                p = gi * (len(modes) + 1) + mi
                pos.append(p)
                labels.append(f"{mode}\n{cache}")
                if len(vals):
                    bp = ax.boxplot([vals], positions=[p], widths=0.6, patch_artist=True, showfliers=False)
                    bp["boxes"][0].set(facecolor=COLORS.get(mode, "gray"), alpha=0.35)
                    ax.plot(p + rng.uniform(-0.15, 0.15, len(vals)), vals, ".", color=COLORS.get(mode, "gray"))
        ax.set_xticks(pos, labels)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.set_ylim(bottom=0)
    return _save(fig, outdir, "join")
