"""What every figure module shares: colours, :class:`FigureError`, saving, per-chunk columns, paired savings.

A plotter has the signature ``plot(df, run, outdir) -> list[str]``: ``df`` is
the run's measurements.csv as a pandas DataFrame, ``run`` its run.json dict,
``outdir`` the run's figures/ directory; it writes ``<stem>.png`` and
``<stem>.pdf`` (:func:`_save`) and returns their paths. Matplotlib is used
through ``matplotlib.figure.Figure`` (the Agg canvas), never pyplot: no display,
no global state. The registry of plotters is :data:`testbed.figures.PLOTTERS`.
"""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

COLORS = {"unicast": "#c0392b", "corecast": "#2471a3"}
MODE_ORDER = ("unicast", "corecast")


class FigureError(ValueError):
    """The data cannot make this figure (missing columns, no rows); one line for the user."""


def _need(df: pd.DataFrame, *cols: str) -> None:
    """FigureError naming the missing columns, or saying there are no rows."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise FigureError(f"measurements lack column(s) {', '.join(missing)}")
    if df.empty:
        raise FigureError("no measured points")


def _save(fig: Figure, outdir: str, stem: str) -> list[str]:
    """Write ``outdir/stem.png`` (150 dpi) and ``.pdf`` without dates or versions inside; return both paths."""
    os.makedirs(outdir, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = os.path.join(outdir, f"{stem}.{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=meta)
        paths.append(path)
    return paths


def _per_chunk(df: pd.DataFrame, col: str) -> pd.Series:
    """``col`` / ``chunks`` per row (NaN where not numeric or chunks <= 0)."""
    chunks = pd.to_numeric(df["chunks"], errors="coerce")
    return pd.to_numeric(df[col], errors="coerce") / chunks.where(chunks > 0)


def _modes(df: pd.DataFrame) -> list[str]:
    """The modes present, unicast and corecast first, then the others in order of appearance."""
    present = list(dict.fromkeys(df["mode"].astype(str)))
    return [m for m in MODE_ORDER if m in present] + [m for m in present if m not in MODE_ORDER]


def _chunk_bytes(df: pd.DataFrame) -> int:
    """The median ``chunk_bytes`` (P, bytes), 1316 if the column is missing or empty."""
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
    """The ``candidates`` that are columns of ``df`` (the keys that tell points apart)."""
    return [c for c in candidates if c in df.columns]
