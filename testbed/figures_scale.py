"""The ``scale`` experiment's figure (issue 16 item 4): what j ASes and k clients cost one machine.

Registered in :data:`testbed.figures.PLOTTERS` as ``scale``. Reads measurements.csv:
``mode``, ``j`` (or ``active_ases``), ``clients``, ``target_gamma`` (or ``gamma``), ``chunks``,
``bringup_s``, ``teardown_s``, ``mem_delta_mib``, ``mem_peak_mib``, ``itr_cpu_s``, ``stream_s``,
``core_bytes``, ``model_core_bytes``, ``delivered_chunks``, ``expected_chunks``, ``speed``.
Four panels: (a) bring-up and teardown seconds against j, one line per gamma; (b) the machine's
memory at its peak above the baseline, MiB, against j; (c) CPU of the ITR (x0's daemon) in
microseconds per client per chunk against k; (d) core bytes per chunk, measured (dots) and the
model (crosses), against k, with every point's delivery. The title gives the speed multiplier:
large points stream below real time (the source is capped at ``max_pps`` datagrams/s).
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from testbed.figures_common import FigureError, _need, _save

MARKERS = ("o", "s", "^", "D", "v")


def _gamma_groups(d: pd.DataFrame) -> list[tuple[float, pd.DataFrame]]:
    col = "target_gamma" if "target_gamma" in d.columns else "gamma"
    return [(float(g), s.sort_values("clients")) for g, s in d.groupby(col)]


def plot_scale(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """The four panels of the module docstring; writes scale.png/.pdf. FigureError without usable rows."""
    _need(df, "mode", "clients", "chunks", "bringup_s", "teardown_s", "mem_delta_mib", "itr_cpu_s", "stream_s",
          "core_bytes", "model_core_bytes", "delivered_chunks", "expected_chunks")
    d = df[df["chunks"] > 0].copy()
    if d.empty:
        raise FigureError("no measured points")
    d["j"] = d["j"] if "j" in d.columns else d["active_ases"]
    d["per_chunk"] = d["core_bytes"] / d["chunks"]
    d["model_per_chunk"] = d["model_core_bytes"] / d["chunks"]
    d["itr_us"] = 1e6 * d["itr_cpu_s"] / (d["chunks"] * d["clients"])
    fig = Figure(figsize=(11, 8.5))
    axes = [fig.add_subplot(2, 2, n) for n in (1, 2, 3, 4)]
    first = d.drop_duplicates("point") if "point" in d.columns else d
    for n, (g, s) in enumerate(_gamma_groups(first)):
        m = MARKERS[n % len(MARKERS)]
        axes[0].plot(s["j"], s["bringup_s"], "-" + m, label=f"bring-up, gamma {g:g}")
        axes[0].plot(s["j"], s["teardown_s"], ":" + m, label=f"teardown, gamma {g:g}")
        axes[1].plot(s["j"], s["mem_delta_mib"], "-" + m, label=f"gamma {g:g}")
    for n, (mode, s) in enumerate(d.groupby("mode")):
        s = s.sort_values("clients")
        m = MARKERS[n % len(MARKERS)]
        for g, sg in _gamma_groups(s):
            axes[2].plot(sg["clients"], sg["itr_us"], "-" + m, label=f"{mode}, gamma {g:g}")
        ok = s["delivered_chunks"] == s["expected_chunks"]
        axes[3].plot(s["clients"], s["model_per_chunk"], "x", color="black", ms=10)
        axes[3].plot(s["clients"][ok], s["per_chunk"][ok], m, label=f"{mode}: every chunk delivered")
        if (~ok).any():
            axes[3].plot(s["clients"][~ok], s["per_chunk"][~ok], m, mfc="none", mec="red", ms=11,
                         label=f"{mode}: chunks missing")
    axes[3].plot([], [], "x", color="black", label="model")
    for ax, title, xl, yl in (
            (axes[0], "(a) bring-up (xTRs registered, clients resolved) and teardown", "j (client ASes)", "seconds"),
            (axes[1], "(b) machine memory at the peak above the baseline", "j (client ASes)", "MiB"),
            (axes[2], "(c) ITR CPU per client per chunk (x0, /proc)", "k (clients)", "microseconds"),
            (axes[3], "(d) core bytes per chunk on x0's uplink", "k (clients)", "bytes per chunk")):
        ax.set_xscale("log")
        ys = [y for line in ax.get_lines() for y in line.get_ydata()]
        ax.set_yscale("log" if ys and min(ys) > 0 else "linear")  # a short stream may cost 0 CPU ticks
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    speeds = d["speed"] if "speed" in d.columns else pd.Series([float("nan")])
    slow = f"stream speed x{speeds.min():g} to x{speeds.max():g} of real time" if speeds.notna().all() else ""
    delivered = f"{int(d['delivered_chunks'].sum()):,} of {int(d['expected_chunks'].sum()):,} chunks delivered"
    fig.suptitle(f"scale: j up to {int(d['j'].max()):,} ASes, k up to {int(d['clients'].max()):,} clients; "
                 f"{delivered}; {slow} (source capped in datagrams/s: large points run below real time)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, outdir, "scale")
