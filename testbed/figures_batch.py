"""The ``batch`` experiment's figure (issue 15): bytes per chunk on the source AS's uplink against gamma.

Registered in :data:`testbed.figures.PLOTTERS` as ``batch``. Reads measurements.csv:
``mode``, ``gamma``, ``core_bytes``, ``chunks``, ``active_ases``, ``chunk_bytes``. Measured
points (bytes per chunk) sit on each mode's model line (:func:`testbed.model.core_bytes_per_chunk`
for j uniform ASes of gamma clients); the floor j(48+P), one copy per receiving ETR, is a dashed
line, and the 1.10 x floor band the issue asks of corecast-src is shaded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from testbed.figures_common import FigureError, _need, _save
from testbed.model import core_bytes_per_chunk

COLORS = {"unicast": "#c0392b", "corecast": "#2471a3", "corecast-batch": "#8e44ad", "corecast-src": "#1e8449"}
ORDER = ("unicast", "corecast", "corecast-batch", "corecast-src")


def plot_batch(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Log-log bytes per chunk against gamma, one colour per mode, the floor marked; writes batch.png/.pdf."""
    _need(df, "mode", "gamma", "core_bytes", "chunks", "active_ases", "chunk_bytes")
    d = df[df["chunks"] > 0].copy()
    if d.empty:
        raise FigureError("no measured points")
    d["per_chunk"] = d["core_bytes"] / d["chunks"]
    j = int(d["active_ases"].max())
    p = int(d["chunk_bytes"].iloc[0])
    g = np.unique(np.round(np.geomspace(1, max(2.0, float(d["gamma"].max())), 60)).astype(int))
    fig = Figure(figsize=(7.5, 5))
    ax = fig.add_subplot(111)
    for mode in [m for m in ORDER if m in set(d["mode"])]:
        s = d[d["mode"] == mode].sort_values("gamma")
        ax.plot(g, [core_bytes_per_chunk(mode, [int(x)] * j, None, p) for x in g], "-", color=COLORS[mode],
                lw=1.2, alpha=0.7)
        hollow = mode == "corecast-batch"  # same bytes as corecast-src: a larger open square around its dots
        ax.plot(s["gamma"], s["per_chunk"], "s" if hollow else "o", color=COLORS[mode], ms=11 if hollow else 7,
                mfc="none" if hollow else COLORS[mode], label=f"{mode} (measured, model line)")
    floor = j * (48 + p)
    ax.axhline(floor, color="black", ls="--", lw=1, label=f"floor j(48+P) = {floor:,} B")
    ax.axhspan(floor, 1.10 * floor, color="grey", alpha=0.15, label="within 1.10 x the floor")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gamma = clients per AS")
    ax.set_ylabel("bytes per chunk on the source AS's uplink")
    ax.set_title(f"REF-LISTs and REF-MAPs against per-client REFs (j = {j}, P = {p})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, outdir, "batch")
