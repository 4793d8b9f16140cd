"""The ``compare`` and ``loss`` experiments' figures (``compare.png``/``.pdf``, ``loss.png``/``.pdf``).

Registered in :data:`testbed.figures.PLOTTERS`.

compare reads the ``part == "bytes"`` rows (``core``, ``mode``, ``gamma``, ``chunks``,
``core_bytes``, ``model_core_bytes``, ``interdomain_bytes``, ``model_interdomain_bytes``,
``state_*``) and the ``part == "join"`` rows (``cache``, ``join_delay_s``): bytes per
chunk on the source uplink and summed over inter-domain links against gamma
(measured points on the model's lines, star solid, tree dashed), median join delay
per mode cold and warm (every mode: source-joined ones and (S,G)-joined ones alike), and router
state per mode at the largest gamma.

loss reads ``mode``, ``loss_permille``, ``client_loss_mean``/``min``/``max``,
``model_client_loss``, ``corr_within_as``, ``corr_across_as``, ``model_corr_within``.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from testbed.figures_common import FigureError, _need, _save

STATE = (("state_map_cache", "map-cache entries"), ("state_cc_chunks", "CoreCast chunks held"),
         ("state_repl_entries", "ITR replication-list RLOCs"), ("state_etr_sg", "ETR (S,G)"),
         ("state_ms_sg", "Map-Server (S,G)"), ("state_mroutes", "FRR mroutes"))
CORE_STYLE = {"star": "-", "tree": "--"}


def _num(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    return df.assign(**{c: pd.to_numeric(df[c], errors="coerce") for c in cols if c in df.columns})


def _colors(modes: list[str]) -> dict[str, str]:
    palette = ["#c0392b", "#1e8449", "#2471a3", "#8e44ad", "#d68910", "#17202a", "#7f8c8d", "#16a085"]
    return {m: palette[i % len(palette)] for i, m in enumerate(modes)}


def plot_compare(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Four panels: uplink and inter-domain bytes per chunk against gamma, join delay, router state."""
    _need(df, "mode", "gamma", "chunks", "core_bytes", "model_core_bytes", "interdomain_bytes",
          "model_interdomain_bytes")
    part = df["part"].astype(str) if "part" in df.columns else pd.Series("bytes", index=df.index)
    b = _num(df[part == "bytes"], "gamma", "chunks", "core_bytes", "model_core_bytes", "interdomain_bytes",
             "model_interdomain_bytes", *(c for c, _ in STATE))
    if b.empty:
        raise FigureError("no bytes rows (part = bytes)")
    if "core" not in b.columns:
        b = b.assign(core="star")
    modes = list(dict.fromkeys(b["mode"].astype(str)))
    color = _colors(modes)
    fig = Figure(figsize=(13, 9))
    axes = [fig.add_subplot(2, 2, i) for i in range(1, 5)]
    for ax, col, title in ((axes[0], "core_bytes", "source uplink"),
                           (axes[1], "interdomain_bytes", "summed over inter-domain links")):
        for (core, mode), g in b.groupby(["core", "mode"], sort=False):
            g = g.sort_values("gamma")
            n = g["chunks"].where(g["chunks"] > 0)
            ax.plot(g["gamma"], g[f"model_{col}"] / n, CORE_STYLE.get(core, ":"), color=color[mode], linewidth=1,
                    alpha=0.8)
            ax.plot(g["gamma"], g[col] / n, "o" if core == "star" else "s", color=color[mode], markersize=5,
                    fillstyle="full" if core == "star" else "none", label=f"{mode} ({core})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("gamma = k / j (clients per AS)")
        ax.set_ylabel("bytes per chunk")
        ax.set_title(f"{title}: measured (points) on the model (lines)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    _join_panel(axes[2], df[part == "join"], modes, color)
    _state_panel(axes[3], b)
    fig.subplots_adjust(hspace=0.35)
    fig.suptitle(_caption(b, run), fontsize=10)
    return _save(fig, outdir, "compare")


def _join_panel(ax, j: pd.DataFrame, modes: list[str], color: dict[str, str]) -> None:
    if j.empty or "join_delay_s" not in j.columns:
        ax.text(0.5, 0.5, "no join rows", ha="center", va="center", transform=ax.transAxes)
        return
    j = j.assign(_d=1e3 * pd.to_numeric(j["join_delay_s"], errors="coerce")).dropna(subset=["_d"])
    jm = [m for m in modes if m in set(j["mode"])] + [m for m in dict.fromkeys(j["mode"]) if m not in modes]
    for i, cache in enumerate(("warm", "cold")):
        med = j[j["cache"] == cache].groupby("mode")["_d"].median()
        xs = [x + (i - 0.5) * 0.38 for x in range(len(jm))]
        vals = [float(med.get(m, float("nan"))) for m in jm]
        ax.bar(xs, vals, 0.36, color=[color.get(m, "#7f8c8d") for m in jm], alpha=0.5 if cache == "warm" else 1.0,
               hatch="" if cache == "warm" else "//", edgecolor="black", linewidth=0.5,
               label=f"{cache} (median)")
        for x, v in zip(xs, vals):
            if v == v:
                ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(jm)))
    ax.set_xticklabels(jm, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("join to first chunk (ms)")
    ax.set_title("join to first chunk (star core); cold: map-cache miss (unicast, CoreCast) or\n"
                 "first receiver of its AS ((S,G) joins: lispmc, ipmc)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def _state_panel(ax, b: pd.DataFrame) -> None:
    cols = [(c, name) for c, name in STATE if c in b.columns]
    if not cols:
        ax.text(0.5, 0.5, "no router-state columns", ha="center", va="center", transform=ax.transAxes)
        return
    top = b[b["gamma"] == b["gamma"].max()]
    top = top[top["core"] == top["core"].iloc[0]]
    modes = list(dict.fromkeys(top["mode"].astype(str)))
    width = 0.8 / len(cols)
    for i, (c, name) in enumerate(cols):
        vals = [float(top[top["mode"] == m][c].max()) for m in modes]
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(modes))]
        ax.bar(xs, [v + 0.5 for v in vals], width, bottom=0.5, label=name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(modes)))
    ax.set_xticklabels(modes, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("entries summed over routers (+0.5)")
    ax.set_title(f"router state after the stream ({top['core'].iloc[0]}, gamma {top['gamma'].iloc[0]:g})",
                 fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)


def _caption(b: pd.DataFrame, run: dict) -> str:
    p = run.get("params", {}) if isinstance(run, dict) else {}
    ases = int(b["active_ases"].max()) if "active_ases" in b.columns else p.get("ases", "?")
    return (f"compare: j = {ases} ASes, k up to {int(pd.to_numeric(b['clients'], errors='coerce').max())} clients, "
            f"{int(b['chunks'].max())} chunks of {int(pd.to_numeric(b['chunk_bytes'], errors='coerce').max())} B "
            f"per stream; cores {', '.join(dict.fromkeys(b['core'].astype(str)))}")


def plot_loss(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Two panels against the loss rate: each client's loss share (mean, min-max), and the within-AS correlation."""
    _need(df, "mode", "loss_permille", "client_loss_mean", "model_client_loss", "corr_within_as")
    d = _num(df, "loss_permille", "client_loss_mean", "client_loss_min", "client_loss_max", "model_client_loss",
             "corr_within_as", "corr_across_as", "model_corr_within")
    modes = list(dict.fromkeys(d["mode"].astype(str)))
    color = _colors(modes)
    fig = Figure(figsize=(13, 5))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for i, mode in enumerate(modes):
        g = d[d["mode"] == mode].sort_values("loss_permille")
        x = g["loss_permille"] / 10 * (1 + 0.03 * (i - len(modes) / 2))  # spread the markers a little
        lo = 100 * (g["client_loss_mean"] - g.get("client_loss_min", g["client_loss_mean"]))
        hi = 100 * (g.get("client_loss_max", g["client_loss_mean"]) - g["client_loss_mean"])
        ax1.errorbar(x, 100 * g["client_loss_mean"], yerr=[lo, hi], fmt="o", color=color[mode], capsize=3,
                     markersize=4, label=f"{mode} (mean, min-max)")
        pos = g[g["loss_permille"] > 0]
        dense = _dense_model(mode, float(d["loss_permille"].max()) / 1000)
        if dense is not None:  # the model as a curve (testbed.lossmodel), else through the measured points
            ax1.plot([100 * p for p, _q, _c in dense], [100 * q for _p, q, _c in dense], "-", color=color[mode],
                     linewidth=1)
            ax2.plot([100 * p for p, _q, _c in dense], [c for _p, _q, c in dense], "-", color=color[mode],
                     linewidth=1)
        else:
            ax1.plot(g["loss_permille"] / 10, 100 * g["model_client_loss"], "-", color=color[mode], linewidth=1)
            ax2.plot(pos["loss_permille"] / 10, pos["model_corr_within"], "-", color=color[mode], linewidth=1)
        ax2.plot(pos["loss_permille"] / 10, pos["corr_within_as"], "o", color=color[mode], label=f"{mode} within AS")
        if "corr_across_as" in pos.columns:
            ax2.plot(pos["loss_permille"] / 10, pos["corr_across_as"], "x", color=color[mode])
    ax1.set_xscale("symlog", linthresh=0.01)
    ax1.set_yscale("symlog", linthresh=0.01)
    ax1.set_xlabel("loss per core router (%)")
    ax1.set_ylabel("chunks lost per client (%)")
    ax1.set_title("per-client loss: measured (points) and model (lines)", fontsize=10)
    ax1.legend(fontsize=7)
    ax1.grid(True, which="both", alpha=0.3)
    ax2.set_xscale("log")
    ax2.set_ylim(-0.2, 1.1)
    ax2.set_xlabel("loss per core router (%)")
    ax2.set_ylabel("per-chunk loss correlation of two clients")
    ax2.set_title("o: same AS, x: different ASes; lines: model (same AS)", fontsize=10)
    ax2.legend(fontsize=7)
    ax2.grid(True, which="both", alpha=0.3)
    n = int(pd.to_numeric(d["chunks"], errors="coerce").max()) if "chunks" in d.columns else 0
    fig.suptitle(f"loss: random drops in the core routers (nftables), {n} chunks per stream, "
                 f"{int(pd.to_numeric(d['clients'], errors='coerce').max()) if 'clients' in d.columns else '?'} "
                 "clients; a lost DATA costs every client behind that ETR the chunk", fontsize=10)
    return _save(fig, outdir, "loss")


def _dense_model(mode: str, p_max: float) -> list[tuple[float, float, float]] | None:
    """(p, client loss, within-AS correlation) on a log grid up to ``p_max``; None for a mode without a loss model."""
    import math

    from testbed.lossmodel import LOSS_MESSAGES, predict
    if mode not in LOSS_MESSAGES or p_max <= 0:
        return None
    lo = min(0.0005, p_max / 2)
    ps = [lo * (p_max / lo) ** (i / 40) for i in range(41)]
    return [(p, predict(mode, p).client_loss, predict(mode, p).corr_within) for p in ps
            if not math.isnan(predict(mode, p).corr_within)]
