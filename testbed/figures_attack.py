"""The ``attack`` experiment's figure: amplification per attack, defence off vs on (``attack.png``/``.pdf``).

Registered in :data:`testbed.figures.PLOTTERS`.
Reads the attack rows of measurements.csv (``row_kind == "attack"``): ``attack``,
``defence`` (``off``, ``on``, ``on+sav``), ``amplification`` (bytes that reached clients /
bytes sent), ``reached_packets``; and the stream rows (``row_kind == "stream"``)
for the legitimate stream's delivery in the caption. The y axis is logarithmic;
an amplification of 0 (nothing reached a client) is drawn as a hatched stub on
the axis floor labelled "0", so it cannot be mistaken for a missing bar.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from testbed.figures_common import FigureError, _need, _save

DEFENCE_COLORS = {"off": "#c0392b", "on": "#1e8449", "on+sav": "#2471a3"}
ORDER = ("off", "on", "on+sav")
OPEN_LABELS = ("forged-spoof",)
"""Attacks the defence alone leaves open (outer source spoofed to a vouched ITR), marked under their bars."""


def _floor(values: pd.Series) -> float:
    """A log-axis floor a decade below the smallest non-zero value (at most 0.1)."""
    pos = values[values > 0]
    return 10 ** math.floor(math.log10(min(0.1, float(pos.min()) / 10))) if len(pos) else 0.01


def plot_attack(df: pd.DataFrame, run: dict, outdir: str) -> list[str]:
    """Grouped bars: one group per attack, one bar per defence setting; values printed on the bars."""
    _need(df, "attack", "defence", "amplification")
    rows = df[df["row_kind"] == "attack"] if "row_kind" in df else df[df["attack"].fillna("") != ""]
    rows = rows[rows["attack"].fillna("").astype(str) != ""]
    if rows.empty:
        raise FigureError("no attack rows")
    rows = rows.assign(amplification=pd.to_numeric(rows["amplification"], errors="coerce").fillna(0.0),
                       defence=rows["defence"].astype(str))
    attacks = list(dict.fromkeys(rows["attack"].astype(str)))
    settings = [d for d in ORDER if d in set(rows["defence"])] + sorted(set(rows["defence"]) - set(ORDER))
    floor = _floor(rows["amplification"])
    top = max(float(rows["amplification"].max()), 1.0) * 6
    fig = Figure(figsize=(max(7.0, 1.25 * len(attacks) + 2), 4.8))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(settings)
    labelled: set[str] = set()
    for i, setting in enumerate(settings):
        sub = rows[rows["defence"] == setting].groupby("attack")["amplification"].mean()
        for x, name in enumerate(attacks):
            if name not in sub.index:
                continue
            value = float(sub[name])
            pos = x - 0.4 + width * (i + 0.5)
            color = DEFENCE_COLORS.get(setting, "#7f8c8d")
            label = None if setting in labelled else {"on+sav": "defence on + source address validation"}.get(
                setting, f"defence {setting}")
            labelled.add(setting)
            if value > 0:
                ax.bar(pos, value - floor, width, bottom=floor, color=color, label=label)
                ax.text(pos, value * 1.15, f"{value:.3g}", ha="center", va="bottom", fontsize=7)
            else:
                ax.bar(pos, floor * 0.6, width, bottom=floor, color="white", edgecolor=color, hatch="///",
                       label=label)
                ax.text(pos, floor * 1.8, "0", ha="center", va="bottom", fontsize=8, color=color,
                        fontweight="bold")
    ax.set_yscale("log")
    ax.set_ylim(floor, top)
    ax.axhline(1.0, color="#555555", linestyle=":", linewidth=1)
    ax.text(1.005, 1.0, "1x", transform=ax.get_yaxis_transform(), ha="left", va="center", fontsize=7,
            color="#555555")
    ax.set_xticks(range(len(attacks)))
    ax.set_xticklabels([f"{a}\n(open without SAV)" if a in OPEN_LABELS else a for a in attacks],
                       rotation=20, ha="right")
    ax.set_ylabel("amplification (bytes reaching clients / bytes sent)")
    ax.set_title(_caption(df, run))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(True, axis="y", which="major", alpha=0.3)
    return _save(fig, outdir, "attack")


def _caption(df: pd.DataFrame, run: dict) -> str:
    """Title: the attacks and, if stream rows are present, the legitimate stream's delivery per setting."""
    title = "CoreCast attacks: amplification per attack (0 = nothing reached a client)"
    if "row_kind" not in df:
        return title
    parts = []
    for _i, s in df[df["row_kind"] == "stream"].iterrows():
        parts.append(f"defence {s.get('defence')}: legit stream {int(s['delivered_chunks'])}/"
                     f"{int(s['expected_chunks'])} chunks, {int(s['corrupt_chunks'])} corrupt")
    return "\n".join([title, *parts])
