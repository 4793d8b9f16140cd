"""Figures of the P2P experiments (``p2p``, ``p2p-upload``, ``channel-change``); registered in testbed.figures.

* ``p2p.png``: bytes per chunk against gamma, on the source AS's uplink and summed over
  inter-domain links: unicast, CoreCast and P2P (random, local) measured, the P2P model
  (:mod:`testbed.p2p.model`) as lines: chunk copies only (dashed), and with the control traffic
  for each run's timing (the rows' ``model_p2p_interdomain_bytes``, crosses).
* ``p2p-upload.png``: continuity index and median startup delay against upload capacity.
* ``channel-change.png``: CDF of join-to-playback (P2P) and join-to-first-chunk (unicast,
  CoreCast) delays, log x axis.
Reads only measurements.csv (``corecast figures`` rebuilds them from the CSV alone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from testbed.figures_common import COLORS, FigureError, _need, _save
from testbed.p2p.model import interdomain_bytes_per_chunk, source_uplink_bytes_per_chunk

P2P_COLORS = {"random": "#8e44ad", "local": "#27ae60"}


def _series(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame, str]]:
    out = []
    for mode in ("unicast", "corecast"):
        sub = df[df["mode"] == mode]
        if len(sub):
            out.append((mode, sub, COLORS[mode]))
    p2p = df[df["mode"] == "p2p"]
    for pol in ("random", "local"):
        sub = p2p[p2p["policy"] == pol] if "policy" in p2p else p2p.iloc[0:0]
        if len(sub):
            out.append((f"p2p {pol}", sub, P2P_COLORS[pol]))
    return out


def plot_p2p(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Two panels against gamma: source uplink and inter-domain bytes per chunk, model lines for P2P."""
    _need(df, "mode", "gamma", "core_bytes", "interdomain_bytes", "chunks")
    df = df[pd.to_numeric(df["chunks"], errors="coerce") > 0]
    if df.empty:
        raise FigureError("no streams")
    fig = Figure(figsize=(12, 4.4))
    axes = fig.subplots(1, 2)
    for ax, col, title in ((axes[0], "core_bytes", "source AS uplink"),
                           (axes[1], "interdomain_bytes", "summed over inter-domain links")):
        for label, sub, color in _series(df):
            g = sub.groupby("gamma")
            per = (g[col].sum() / g["chunks"].sum()).sort_index()
            ax.plot(per.index, per.values, "o", color=color, label=f"{label} (measured)")
        p2p = df[df["mode"] == "p2p"]
        if len(p2p) and "clients_per_as" in p2p:
            for pol in ("random", "local"):
                pts = []
                for gamma, sub in p2p.groupby("gamma"):
                    counts = [int(x) for x in str(sub["clients_per_as"].iloc[0]).split()]
                    p = int(sub["chunk_bytes"].iloc[0])
                    y = (source_uplink_bytes_per_chunk(counts, p) if col == "core_bytes"
                         else interdomain_bytes_per_chunk(counts, pol, p))
                    pts.append((gamma, y))
                if pts and (col == "interdomain_bytes" or pol == "random"):
                    xs, ys = zip(*sorted(pts))
                    ax.plot(xs, ys, "--", color=P2P_COLORS[pol] if col != "core_bytes" else "gray",
                            label=f"model p2p {pol + ': chunk copies' if col != 'core_bytes' else '(pushes)'}")
                full = p2p[p2p["policy"] == pol] if "policy" in p2p else p2p.iloc[0:0]
                if col == "interdomain_bytes" and len(full) and "model_p2p_chunk_bytes" in full:
                    g = full.groupby("gamma")  # the row's model: chunk copies + control for the run's timing
                    per = (g["model_p2p_interdomain_bytes"].sum() / g["chunks"].sum()).sort_index()
                    ax.plot(per.index, per.values, "x-", lw=0.8, color=P2P_COLORS[pol],
                            label=f"model p2p {pol}: + control")
        ax.set_xlabel("gamma = k / j (peers per AS)")
        ax.set_ylabel("bytes per chunk")
        ax.set_title(title)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, outdir, "p2p")


def plot_p2p_upload(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Continuity index and median startup delay against the peers' upload capacity."""
    _need(df, "mode", "upload", "continuity", "median_startup_s")
    p2p = df[df["mode"] == "p2p"].copy()
    if p2p.empty:
        raise FigureError("no p2p rows")
    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    for pol, sub in p2p.groupby("policy"):
        sub = sub.sort_values("upload")
        color = P2P_COLORS.get(str(pol), "gray")
        ax1.plot(sub["upload"], sub["continuity"], "o-", color=color, label=f"{pol}: swarm")
        if "min_continuity" in sub:
            ax1.plot(sub["upload"], sub["min_continuity"], "v:", color=color, label=f"{pol}: worst peer")
        ax2.plot(sub["upload"], pd.to_numeric(sub["median_startup_s"], errors="coerce"), "o-", color=color,
                 label=str(pol))
    ax1.axvline(1.0, color="gray", lw=0.8, ls="--")
    ax1.set_xlabel("upload capacity (x stream rate)")
    ax1.set_ylabel("continuity index")
    ax1.set_ylim(0, 1.05)
    ax1.set_title("chunks present at their playout deadline")
    ax2.set_xlabel("upload capacity (x stream rate)")
    ax2.set_ylabel("median startup delay (s)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("join to playback")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, outdir, "p2p-upload")


def plot_channel_change(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """CDF of channel-change delays per mode (P2P: join to playback; unicast/CoreCast: join to first chunk)."""
    _need(df, "mode", "join_delay_s")
    d = df.assign(_d=pd.to_numeric(df["join_delay_s"], errors="coerce")).dropna(subset=["_d"])
    d = d[d["_d"] > 0]
    if d.empty:
        raise FigureError("no join delays")
    fig = Figure(figsize=(7.5, 4.4))
    ax = fig.add_subplot(1, 1, 1)
    for mode in [m for m in ("unicast", "corecast", "p2p") if m in set(d["mode"])]:
        vals = np.sort(d[d["mode"] == mode]["_d"].to_numpy())
        ys = np.arange(1, len(vals) + 1) / len(vals)
        color = COLORS.get(mode, P2P_COLORS["random"])
        ax.step(vals, ys, where="post", color=color,
                label=f"{mode} (median {np.median(vals):.3g} s, n={len(vals)})")
    ax.axvspan(10, 20, color="gray", alpha=0.15, label="P2P-TV measured 10-20 s (paper)")
    ax.set_xscale("log")
    ax.set_xlabel("channel-change delay (s)")
    ax.set_ylabel("share of joins")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, outdir, "channel-change")
