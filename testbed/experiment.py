"""``corecast run``: parameters, the run directory, the sweep, progress, figures.

An experiment module's ``run(ctx)`` gets a :class:`Context`; it calls
:meth:`Context.network` for each topology it needs and, inside,
:meth:`testbed.measure.Network.stream` once per mode (see :mod:`testbed.measure`).
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Iterable, Iterator

from testbed.net import registry
from testbed.measure import Network, StreamSpec
from testbed.modes import parse_modes, selected_modes
from testbed.nodeutil import ConfigError
from testbed.params import TOPO_KEYS, _shown, check_out_dir, check_stream, parse_sets, topo_params
from testbed.bars import Bar as Progress
from testbed.live import LiveView
from testbed.results import Measurements, RunDir


class Context:
    """What an experiment's ``run(ctx)`` gets: parameters, the run directory, measurements, progress."""

    def __init__(self, experiment: str, params: dict[str, Any], run: RunDir, keep_pcap: bool,
                 snaplen: int | None = None, live: bool = False) -> None:
        self.experiment = experiment
        self.params = params
        self.run = run
        self.keep_pcap = keep_pcap
        self.snaplen = snaplen if snaplen is not None else (0 if keep_pcap else 128)  # 0: whole packets
        self.live = LiveView() if live else None  # --live: per-stream view instead of the progress bars
        self.keep_records = bool(params.get("keep_records", False))
        self.measurements = Measurements(run.measurements_path)
        self._bar: Progress | None = None

    def topo_values(self, **values: Any) -> dict[str, Any]:
        """Topology values: the experiment's topology parameters overridden by ``values``."""
        out = {k: v for k, v in self.params.items() if k in TOPO_KEYS}
        out.update(values)
        for key in ("register_interval", "expiry"):
            if key in self.params:
                out.setdefault(key, self.params[key])
        return out

    def network(self, label: str, warm_ases: Iterable[int] | None = None, **values: Any) -> Network:
        """A network for one point (use as a context manager); ``warm_ases``: see :class:`Network`."""
        return Network(self, self.topo_values(**values), label, warm_ases=warm_ases)

    def spec(self, mode: str, **over: Any) -> StreamSpec:
        """A stream spec from the experiment's parameters."""
        p = {**self.params, **over}
        return StreamSpec(mode=mode, chunks=int(p["chunks"]), chunk_bytes=int(p.get("chunk_bytes", 1316)),
                          bitrate=int(p.get("bitrate", 1_000_000)), speed=float(p.get("speed", 1.0)),
                          content=self.content(p),
                          extra={**p.get("extra", {}), **({"player": p["player"]} if p.get("player") else {})})

    def content(self, p: dict[str, Any]) -> str:
        """The source's content: live ffmpeg, or one TS file generated once per run (content=file)."""
        content = str(p.get("content", "ffmpeg"))
        if content != "file":
            return content
        path = os.path.join(self.run.path, "content.ts")
        need = int(p["chunks"]) * int(p.get("chunk_bytes", 1316))
        if not os.path.exists(path) or os.path.getsize(path) < need:  # regenerated longer if a stream needs it
            from testbed.stream.content import generate_ts_file
            seconds = need * 8 / int(p.get("bitrate", 1_000_000)) + 2
            generate_ts_file(path, seconds, int(p.get("bitrate", 1_000_000)))
        return f"file:{path}"

    def record(self, row: dict[str, Any]) -> None:
        """Append a measured row to measurements.csv (atomically)."""
        self.measurements.append(row)

    def points(self, items: list, label: str = "points") -> Iterator:
        """Iterate over a sweep with a progress bar."""
        with Progress(len(items), f"{self.experiment} {label}", unit="points", enabled=self.live is None) as bar:
            self._bar = bar
            try:  # left early (Ctrl-C): the bar's last line says how far the sweep got (testbed.bars)
                for i, item in enumerate(items):
                    bar.children_per_unit = self._streams_per_point(item)
                    yield item
                    bar.update(i + 1)
            finally:
                self._bar = None

    def _streams_per_point(self, item: Any) -> int:
        """Streams one sweep item runs: its ``modes`` (a Point's), else the experiment's modes (for the bar)."""
        modes = getattr(item, "modes", None)
        if not modes:
            modes = selected_modes(self.params)
        return max(1, len(modes))

    def sub_progress(self, total: float, label: str, unit: str = "") -> Progress:
        """A progress bar for the seconds/chunks of one stream (nested under the sweep's if any)."""
        if self._bar is not None and hasattr(self._bar, "child_bar"):
            return self._bar.child_bar(total, label, unit=unit)
        return Progress(total, label, unit=unit, enabled=self.live is None)


def parse_experiment_params(module: Any, sets: list[str]) -> dict[str, Any]:
    """The experiment's DEFAULTS overridden by ``--set``, type-checked; unknown keys rejected."""
    values = parse_sets(sets)
    defaults: dict[str, Any] = dict(module.DEFAULTS)
    allowed = set(defaults) | TOPO_KEYS | {"register_interval", "expiry", "keep_records", "modes"}
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise ConfigError(f"unknown parameter '{unknown[0]}' for this experiment (known: {', '.join(sorted(allowed))})")
    params = {**defaults, **values}
    topo_params({k: v for k, v in params.items() if k in TOPO_KEYS})  # one-line errors for topology keys
    for key, default in defaults.items():
        if key in TOPO_KEYS:
            continue
        value = params[key]
        if key == "player" and value in ("ffmpeg", "vlc"):  # player=true is ffmpeg; player=vlc: cvlc
            params[key] = True if value == "ffmpeg" else value
            continue
        if isinstance(default, bool) and not isinstance(value, bool):
            choices = "true, false, ffmpeg or vlc" if key == "player" else "true or false"
            raise ConfigError(f"{key} must be {choices}, got '{value}'")
        if isinstance(default, int) and not isinstance(default, bool) and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{key} must be a whole number, got '{_shown(value)}'")
        if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"{key} must be a number, got '{value}'")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(f"{key} must not be negative, got {_shown(value)}")
    check_stream(params)  # what a daemon would refuse later, refused before anything is built
    if "modes" in params:  # every experiment accepts every mode (testbed.modes)
        params["modes"] = ",".join(m.name for m in parse_modes(params["modes"]))
    if hasattr(module, "validate"):
        module.validate(params)
    return params


def run_experiment(name: str, sets: list[str], out: str | None = None, keep_pcap: bool = False,
                   snaplen: int | None = None, live: bool = False) -> int:
    """``corecast run NAME``: parameters, run directory, the experiment, figures, a summary."""
    from experiments import EXPERIMENTS
    module = EXPERIMENTS[name]
    params = parse_experiment_params(module, sets)
    check_out_dir(out if out is not None else "results")
    with registry.holding_lock():  # every point's network in turn, no other run in between; Busy at once
        return _run(module, name, params, out, keep_pcap, snaplen, live)


def _run(module: Any, name: str, params: dict[str, Any], out: str | None, keep_pcap: bool,
         snaplen: int | None, live: bool) -> int:
    run = RunDir.create(name, params, out=out, pcap=True)
    print(f"corecast run {name}: run directory {run.path}", flush=True)
    ctx = Context(name, params, run, keep_pcap, snaplen, live)
    code = 0
    try:
        with run:
            code = module.run(ctx) or 0
            if code:
                run.mark("failed", error="the experiment's checks failed")
    except KeyboardInterrupt:
        print(f"corecast: interrupted; {len(ctx.measurements)} measured rows (one per point and mode) kept in "
              f"{run.measurements_path}; "
              "run marked incomplete", flush=True)
        raise
    finally:
        if ctx.live is not None:
            ctx.live.close()
        if not keep_pcap:
            shutil.rmtree(run.pcap, ignore_errors=True)
        if len(ctx.measurements):
            _figures(run)
    return code


def _figures(run: RunDir) -> None:
    try:
        from testbed.figures import render_run
    except ImportError:
        return
    try:
        for path in render_run(run.path):
            print(f"figure: {path}")
    except Exception as exc:  # a plotting problem must not lose the measurements
        print(f"corecast: figures not drawn: {exc}")
