"""Experiments: one module each, runnable as ``corecast run NAME``.

Each module has ``DESCRIPTION`` (one line), ``DEFAULTS`` (parameters and their
defaults) and ``run(ctx)`` (see :mod:`testbed.experiment`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

NAMES = ["demo", "smoke", "gamma", "clients", "deployment", "distribution", "load", "join", "topology", "attack",
         "p2p", "p2p-upload", "channel-change", "compare", "loss", "batch", "scale"]
"""Experiment names; a '-' in a name is '_' in its module's name (``p2p-upload`` is ``experiments/p2p_upload.py``)."""


class _Registry(dict):
    """Experiment modules by name, imported on first use."""

    def __init__(self) -> None:
        super().__init__()
        for name in NAMES:
            try:
                self[name] = importlib.import_module(f"experiments.{name.replace('-', '_')}")
            except ModuleNotFoundError as exc:
                if exc.name != f"experiments.{name.replace('-', '_')}":
                    raise


EXPERIMENTS: dict[str, ModuleType] = _Registry()
