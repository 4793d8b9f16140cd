"""The figure of ``corecast model``: bytes per chunk and savings per mode, with what the emulation confirmed.

:func:`plot_model` takes model.csv's rows (:mod:`testbed.modelcli`) and the
emulated points (:func:`testbed.modelcli.emulated_points`: measured, every chunk
delivered, core bytes equal to the model) and writes ``model.png`` and
``model.pdf`` (each through a temporary file and a rename). With several points
the x axis is gamma = k / j: left, bytes per chunk on the source uplink (log);
right, savings against unicast; the gamma range the emulation covered is
shaded and each emulated point's measured savings (mode against unicast at the
same point of the same experiment, an even spread with the curves' chunk size
and capability, point-to-point modes) is a marker. With one point (a CSV), bars
per mode, and the title says whether (j, k) lies within the emulated range.
Matplotlib through ``matplotlib.figure.Figure`` (Agg), never pyplot.
"""

from __future__ import annotations

import os
from typing import Any

from matplotlib.figure import Figure

from testbed.modelscale import point_to_point
from testbed.modemodels import MODELS

COLORS = {"unicast": "#c0392b", "corecast": "#2471a3", "corecast-batch": "#17a589", "corecast-src": "#7d3c98",
          "lispmc": "#d68910", "ipmc": "#566573"}


def _save(fig: Figure, outdir: str, stem: str = "model") -> list[str]:
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = os.path.join(outdir, f"{stem}.{ext}")
        tmp = f"{path}.tmp{os.getpid()}"
        try:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight", metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths.append(path)
    return paths


def measured_savings(emulated: list[dict[str, Any]]) -> list[tuple[str, float, float, int, int]]:
    """(mode, gamma, measured savings, ases, clients) for each emulated non-unicast point with unicast beside it."""
    uni = {(e["experiment"], e["point"], e["ases"], e["clients"]): e["core_bytes"]
           for e in emulated if e["mode"] == "unicast"}
    out = []
    for e in emulated:
        base = uni.get((e["experiment"], e["point"], e["ases"], e["clients"]))
        if e["mode"] != "unicast" and base and e["ases"] and e["clients"]:
            out.append((e["mode"], e["clients"] / e["ases"], 1.0 - e["core_bytes"] / base, e["ases"], e["clients"]))
    return out


def _range_text(emulated: list[dict[str, Any]]) -> str:
    if not emulated:
        return "no emulated point in results/reference"
    return (f"emulated: {len(emulated)} points, j <= {max(e['ases'] for e in emulated):,}, "
            f"k <= {max(e['clients'] for e in emulated):,}")


def plot_model(rows: list[dict[str, Any]], emulated: list[dict[str, Any]], outdir: str) -> list[str]:
    """Write model.png and model.pdf into ``outdir`` (which exists); return their paths."""
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    points = sorted({r["point"] for r in rows})
    fig = Figure(figsize=(12, 4.8))
    ax_b, ax_s = fig.subplots(1, 2)
    chunk = rows[0]["chunk_bytes"]
    if len(points) == 1:
        _bars(ax_b, ax_s, rows, modes)
        r0 = rows[0]
        inside = bool(emulated) and r0["ases"] <= max(e["ases"] for e in emulated) and \
            r0["clients"] <= max(e["clients"] for e in emulated)
        fig.suptitle(f"model, {r0['ases']:,} ASes, {r0['clients']:,} clients ({r0['distribution']}), chunk {chunk} B: "
                     f"{'within' if inside else 'beyond'} the emulated range ({_range_text(emulated)})", fontsize=9)
    else:
        _curves(ax_b, ax_s, rows, modes, emulated)
        fig.suptitle(f"model, star core, chunk {chunk} B ({rows[0]['distribution']}); shaded: gamma range "
                     f"the emulation confirmed ({_range_text(emulated)})", fontsize=9)
    return _save(fig, outdir)


def _bars(ax_b, ax_s, rows: list[dict[str, Any]], modes: list[str]) -> None:
    width = 0.27
    for i, (col, label) in enumerate((("uplink_bytes", "source uplink"), ("interdomain_bytes", "sum of inter-domain"),
                                      ("max_link_bytes", "busiest link"))):
        ax_b.bar([x + (i - 1) * width for x in range(len(modes))], [max(r[col], 1) for r in rows], width,
                 label=label)
    ax_b.set_yscale("log")
    ax_b.set_xticks(range(len(modes)), modes, rotation=20)
    ax_b.set_ylabel("bytes per chunk")
    ax_b.legend(fontsize=8)
    others = [r for r in rows if r["mode"] != "unicast"]
    ax_s.bar([r["mode"] for r in others], [100 * r["savings"] for r in others],
             color=[COLORS.get(r["mode"], "#333333") for r in others])
    ax_s.set_ylabel("savings on the source uplink vs unicast (%)")
    ax_s.tick_params(axis="x", rotation=20)
    ax_s.axhline(0, color="black", linewidth=0.6)


def _curves(ax_b, ax_s, rows: list[dict[str, Any]], modes: list[str], emulated: list[dict[str, Any]]) -> None:
    ases_values = sorted({r["ases"] for r in rows})
    for mode in modes:
        for ases in ases_values:
            sel = sorted((r for r in rows if r["mode"] == mode and r["ases"] == ases and r["gamma"] > 0),
                         key=lambda r: r["gamma"])
            if not sel:
                continue
            label = mode if len(ases_values) == 1 else f"{mode}, j={ases:,}"
            style = "-" if ases == ases_values[-1] else "--"
            color = COLORS.get(mode, "#333333")
            ax_b.plot([r["gamma"] for r in sel], [max(r["uplink_bytes"], 1) for r in sel], style, color=color,
                      label=label, marker=".")
            if mode != "unicast":
                ax_s.plot([r["gamma"] for r in sel], [100 * r["savings"] for r in sel], style, color=color,
                          label=label, marker=".")
    # comparable emulated points: an even spread, the same chunk size and capability as the curves; modes that
    # replicate in the core (ipmc) save more with more ASes, so only point-to-point modes get markers
    all_capable = all(r["capable_ases"] == r["ases"] for r in rows)
    same = [e for e in emulated if e["even"] and e["chunk_bytes"] == rows[0]["chunk_bytes"]
            and (e["capable_ases"] == e["ases"]) == all_capable]
    gammas = [e["clients"] / e["ases"] for e in same if e["ases"] and e["clients"]]
    if gammas:
        for ax in (ax_b, ax_s):
            ax.axvspan(min(gammas), max(gammas), color="#aed6f1", alpha=0.35, zorder=0, label="_emulated range")
    for mode, gamma, sav, _a, _k in measured_savings(same):
        if mode in modes and point_to_point(MODELS[mode]):
            ax_s.plot([gamma], [100 * sav], "o", markerfacecolor="none", color=COLORS.get(mode, "#333333"),
                      markersize=6, label="_measured")
    ax_s.plot([], [], "o", markerfacecolor="none", color="black", label="measured by the emulation")
    for ax in (ax_b, ax_s):
        ax.set_xscale("log")
        ax.set_xlabel("gamma = k / j (clients per AS with clients)")
        ax.grid(True, which="both", alpha=0.3)
    ax_b.set_yscale("log")
    ax_b.set_ylabel("bytes per chunk on the source uplink")
    ax_s.set_ylabel("savings on the source uplink vs unicast (%)")
    ax_s.axhline(0, color="black", linewidth=0.6)
    ax_b.legend(fontsize=7)
    ax_s.legend(fontsize=7)
