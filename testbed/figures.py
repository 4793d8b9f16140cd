"""Figures: the registry of plotters (one per experiment), the topology drawing, and ``corecast figures``.

Every plotter has the signature ``plot(df, run, outdir) -> list[str]``: ``df`` is
the run's measurements.csv as a pandas DataFrame, ``run`` its run.json dict,
``outdir`` the run's figures/ directory; it writes ``<experiment>.png`` and
``<experiment>.pdf`` and returns their paths. Matplotlib is used through
``matplotlib.figure.Figure`` (the Agg canvas), never pyplot: no display, no
global state. Columns each plotter reads are listed in docs/results.md.
Shared helpers are in :mod:`testbed.figures_common`, the core-traffic plotters
in :mod:`testbed.figures_traffic`, the others in ``testbed/figures_*.py``
(imported on use).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable

import pandas as pd

from testbed.figures_common import COLORS, MODE_ORDER, FigureError, paired_savings  # re-exported
from testbed.figures_traffic import plot_clients, plot_demo, plot_deployment, plot_distribution, plot_gamma
from testbed.results import MEASUREMENTS_CSV, RUN_JSON, RunDir, find_runs
from testbed.topodraw import draw_topology  # re-exported: figures.draw_topology

DEFAULT_RESULTS = os.path.join("results", "reference")
TOPOLOGY_JSON = "topology.json"
"""A run directory file holding a :func:`draw_topology` graph; drawn by :func:`plot_run`."""


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

COMBINED = ("scale",)
"""Experiments whose sweep is split over sibling run directories (one lock-holding run per point, as in
results/reference/scale/): :func:`plot_combined` draws their points together in the parent's figures/."""


def plot_combined(runs: list[str]) -> list[str]:
    """One figure per parent directory holding two or more runs of a :data:`COMBINED` experiment.

    Their measurements.csv rows are concatenated (unreadable ones left out) and drawn by the
    experiment's plotter into ``<parent>/figures/``; FigureError if a group has no usable rows.
    """
    groups: dict[tuple[str, str], list[str]] = {}
    for path in runs:
        try:
            exp = str(RunDir.open(path).info.get("experiment", ""))
        except Exception:  # noqa: BLE001 (an unreadable run is skipped by plot_run already)
            continue
        if exp in COMBINED:
            groups.setdefault((os.path.dirname(os.path.abspath(path)), exp), []).append(path)
    written: list[str] = []
    for (parent, exp), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        frames = []
        for path in members:
            try:
                frames.append(pd.read_csv(os.path.join(path, MEASUREMENTS_CSV)))
            except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
        if not frames:
            raise FigureError(f"{parent}: no readable measurements.csv among its {exp} runs")
        info = {"experiment": exp, "combined_from": [os.path.basename(m) for m in members]}
        written += PLOTTERS[exp](pd.concat(frames, ignore_index=True), info, os.path.join(parent, "figures"))
    return written


def figures_command(results_dir: str | None = None) -> int:
    """``corecast figures [RESULTS_DIR]``: regenerate every run's figures under ``results_dir``.

    Prints one line per figure written and one per skipped run; sibling runs of a split sweep
    (:data:`COMBINED`) also get one figure together in their parent's figures/. Returns 0 if all
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
    try:
        for written in plot_combined(runs):
            print(written)
    except Exception as exc:  # noqa: BLE001 (one line, like a skipped run)
        print(f"skipped the combined figures: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        code = 1
    return code


__all__ = ["COLORS", "MODE_ORDER", "PLOTTERS", "FigureError", "draw_topology", "figures_command", "paired_savings",
           "plot_run", "render_run", "plot_demo", "plot_gamma", "plot_clients", "plot_deployment", "plot_distribution",
           "plot_load", "plot_join", "plot_attack", "plot_batch", "plot_scale", "plot_combined", "COMBINED"]
