"""Run directories and measurements (DESIGN section 4).

A run lives in ``results/<experiment>/<UTC timestamp YYYYmmddTHHMMSSZ>/`` (or
``--out DIR``)::

    run.json            experiment, parameters, status, times, git commit, versions
    measurements.csv    one row per measured point (REQUIRED_COLUMNS first)
    logs/  figures/  config/  [pcap/]

Every write is atomic (temp file in the same directory, then ``os.replace``):
a reader, or a run killed at any instant, sees either the old file or the new
one, never half of one. ``measurements.csv`` is rewritten whole after each row,
so an interrupted sweep keeps every finished point.

Typical use by an experiment::

    with RunDir.create("gamma", params, out=args.out) as run:
        table = Measurements(run.measurements_path)
        for point in points:
            table.append({...})
    # status: complete, or incomplete on Ctrl-C (re-raised), or failed on an exception
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import subprocess
from typing import Any, Iterable

from testbed.nodeutil import ConfigError, read_json_object, write_json_atomic, write_text_atomic

REQUIRED_COLUMNS: tuple[str, ...] = (
    "experiment", "mode", "ases", "capable_ases", "clients", "gamma", "chunk_bytes", "chunks",
    "core_bytes", "core_packets", "control_bytes", "model_core_bytes",
    "delivered_chunks", "expected_chunks", "corrupt_chunks",
)
"""Columns every measurements.csv has, in this order, before any extra column."""

LINK_COLUMNS: tuple[str, ...] = (
    "experiment", "point", "mode", "stream", "link", "node", "interface", "direction",
    "bytes", "packets", "model_bytes", "control_bytes", "control_packets",
)
"""Columns of links.csv: one row per inter-domain link, direction and stream (docs/results.md)."""

STATUSES = ("running", "complete", "incomplete", "failed")
"""Values of run.json ``status``."""

RUN_JSON = "run.json"
MEASUREMENTS_CSV = "measurements.csv"
LINKS_CSV = "links.csv"
SUBDIRS = ("logs", "figures", "config")
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def utc_now() -> _dt.datetime:
    """The current time, UTC, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def _iso(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def git_info(root: str = PROJECT_ROOT) -> dict:
    """``{"commit": sha or "unknown", "dirty": bool or None}`` of the checkout at ``root``.

    ``dirty`` is True when tracked files differ from HEAD (untracked files do not count, nor does
    anything under ``results/``: run data, which a container may mount over the tracked reference results).
    """
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def versions() -> dict:
    """Versions of Python, Mininet, the kernel, scapy, pandas and matplotlib (None if absent), the SHA-256
    of requirements.lock and the Debian packages' versions (:mod:`testbed.environment`)."""
    from importlib import metadata

    from testbed.environment import debian_versions, lock_sha256

    def dist(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        from mininet.net import VERSION as mininet_version  # type: ignore[import-not-found]
    except Exception:  # not installed, or broken: still record the run
        mininet_version = dist("mininet")
    return {
        "python": platform.python_version(),
        "mininet": mininet_version,
        "kernel": platform.release(),
        "scapy": dist("scapy"),
        "pandas": dist("pandas"),
        "matplotlib": dist("matplotlib"),
        "requirements_lock": lock_sha256(),  # sha256 of requirements.lock (testbed.environment)
        "debian": dict(debian_versions()),
    }


class RunDir:
    """A run directory: its paths, its ``run.json`` and its status transitions.

    Use :meth:`create` for a new run and :meth:`open` for an existing one. As a
    context manager it marks the run ``complete`` on a normal exit (unless it was
    already marked), ``incomplete`` on KeyboardInterrupt or SystemExit and
    ``failed`` on any other exception; the exception is always re-raised.
    """

    def __init__(self, path: str, info: dict) -> None:
        self.path = os.path.abspath(path)
        self.info = info

    # -- paths ---------------------------------------------------------------
    @property
    def run_json(self) -> str:
        """Path of run.json."""
        return os.path.join(self.path, RUN_JSON)

    @property
    def measurements_path(self) -> str:
        """Path of measurements.csv."""
        return os.path.join(self.path, MEASUREMENTS_CSV)

    @property
    def logs(self) -> str:
        """The logs/ directory (daemon logs, counters)."""
        return os.path.join(self.path, "logs")

    @property
    def figures(self) -> str:
        """The figures/ directory (PNG and PDF)."""
        return os.path.join(self.path, "figures")

    @property
    def config(self) -> str:
        """The config/ directory (node configs written by the testbed)."""
        return os.path.join(self.path, "config")

    @property
    def pcap(self) -> str:
        """The pcap/ directory (created by ``create(..., pcap=True)`` or :meth:`ensure_pcap`)."""
        return os.path.join(self.path, "pcap")

    def ensure_pcap(self) -> str:
        """Create pcap/ if needed and return its path."""
        os.makedirs(self.pcap, exist_ok=True)
        return self.pcap

    @property
    def status(self) -> str:
        """The current status in run.json."""
        return self.info.get("status", "unknown")

    # -- life cycle ----------------------------------------------------------
    @classmethod
    def create(cls, experiment: str, params: dict, out: str | None = None, root: str = "results",
               pcap: bool = False) -> "RunDir":
        """Make the run directory and write run.json with status ``running``.

        Without ``out`` the directory is ``root/experiment/<YYYYmmddTHHMMSSZ>`` (a
        ``-2``, ``-3``... suffix if that second is taken). ``out`` may exist but must
        not hold a run.json already (ConfigError: we never overwrite a run).
        """
        started = utc_now()
        if out is None:
            base = os.path.join(root, experiment, started.strftime("%Y%m%dT%H%M%SZ"))
            path, n = base, 1
            while True:
                try:
                    os.makedirs(path)
                    break
                except FileExistsError:
                    n += 1
                    path = f"{base}-{n}"
        else:
            path = out
            if os.path.exists(os.path.join(path, RUN_JSON)):
                raise ConfigError(f"{path} already holds a run (run.json); choose another --out")
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create run directory {path}: {exc.strerror}") from None
        for sub in SUBDIRS + (("pcap",) if pcap else ()):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
        info = {
            "experiment": experiment,
            "parameters": params,
            "status": "running",
            "started": _iso(started),
            "finished": None,
            "duration_s": None,
            "error": None,
            "git": git_info(),
            "versions": versions(),
            "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "node": platform.node()},
        }
        run = cls(path, info)
        run.save()
        return run

    @classmethod
    def open(cls, path: str) -> "RunDir":
        """An existing run directory (reads its run.json; ConfigError if missing or invalid)."""
        return cls(path, read_json_object(os.path.join(path, RUN_JSON)))

    def save(self) -> None:
        """Write run.json atomically."""
        write_json_atomic(self.run_json, self.info)

    def update(self, **fields: Any) -> None:
        """Add or replace top-level run.json fields (e.g. ``summary=...``) and save."""
        self.info.update(fields)
        self.save()

    def mark(self, status: str, error: str | None = None) -> None:
        """Set the status (complete|incomplete|failed|running), the finish time and an error line."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.info["status"] = status
        if status == "running":
            self.info["finished"] = None
            self.info["duration_s"] = None
        else:
            finished = utc_now()
            self.info["finished"] = _iso(finished)
            try:
                started = _dt.datetime.strptime(self.info["started"], "%Y-%m-%dT%H:%M:%SZ")
                started = started.replace(tzinfo=_dt.timezone.utc)
                self.info["duration_s"] = (finished - started).total_seconds()
            except (KeyError, TypeError, ValueError):
                self.info["duration_s"] = None
        self.info["error"] = error
        self.save()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            if self.status == "running":
                self.mark("complete")
        elif issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.mark("incomplete", error=f"interrupted ({exc_type.__name__})")
        else:
            msg = str(exc).splitlines()[0] if str(exc) else ""
            self.mark("failed", error=f"{exc_type.__name__}: {msg}" if msg else exc_type.__name__)
        return False

    def __repr__(self) -> str:
        return f"RunDir({self.path!r}, status={self.status!r})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class Measurements:
    """measurements.csv: rows appended one at a time, the whole file rewritten atomically each time.

    REQUIRED_COLUMNS come first in their fixed order, then extra columns in the
    order they first appear. Every row must name every required column (the value
    may be None, written as an empty cell). An existing file is loaded, so
    appending continues it.
    """

    def __init__(self, path: str, required: tuple[str, ...] = REQUIRED_COLUMNS) -> None:
        self.path = path
        self.required = required
        self.columns: list[str] = list(required)
        self.rows: list[dict[str, str]] = []
        if os.path.exists(path):
            with open(path, newline="") as fh:
                reader = csv.DictReader(fh)
                for col in reader.fieldnames or []:
                    if col not in self.columns:
                        self.columns.append(col)
                self.rows = [{k: v for k, v in r.items() if k is not None} for r in reader]

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, row: dict[str, Any]) -> None:
        """Add one point and rewrite the file (temp file + rename). ValueError if a required column is missing."""
        self._add(row)
        self._write()

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append several rows and rewrite the file once (all of them or, on a bad row, none)."""
        rows = list(rows)
        kept = (list(self.columns), len(self.rows))
        try:
            for row in rows:
                self._add(row)
        except ValueError:
            self.columns, self.rows = kept[0], self.rows[:kept[1]]
            raise
        self._write()

    def _add(self, row: dict[str, Any]) -> None:
        missing = [c for c in self.required if c not in row]
        if missing:
            raise ValueError(f"measurement row lacks {', '.join(missing)}")
        for key in row:
            if not isinstance(key, str) or not key:
                raise ValueError(f"bad column name {key!r}")
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append({k: _cell(v) for k, v in row.items()})

    def _write(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomic(self.path, buf.getvalue(), fsync=True)

    def frame(self):
        """The rows as a pandas DataFrame (same as :func:`load_measurements` on the file)."""
        return load_measurements(self.path)


def load_measurements(path: str):
    """Read a measurements.csv (or a run directory holding one) into a pandas DataFrame."""
    import pandas as pd

    if os.path.isdir(path):
        path = os.path.join(path, MEASUREMENTS_CSV)
    return pd.read_csv(path)


def is_run_dir(path: str) -> bool:
    """True if ``path`` holds a run.json."""
    return os.path.isfile(os.path.join(path, RUN_JSON))


def find_runs(root: str) -> list[str]:
    """Every run directory (holding a run.json) under ``root``, ``root`` included, sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in ("logs", "figures", "config", "pcap"))
        if RUN_JSON in filenames:
            found.append(dirpath)
    return sorted(found)


def _run_sort_key(name: str) -> tuple[str, int]:
    """``20240101T000000Z-3`` sorts after ``20240101T000000Z-2`` and after ``20240101T000000Z``."""
    stem, _, suffix = name.partition("-")
    return (stem, int(suffix) if suffix.isdigit() else 0)


def latest_run(experiment: str, root: str = "results", status: str | None = None) -> str | None:
    """The newest run directory of ``experiment`` under ``root`` (by timestamp name), or None.

    With ``status``, only runs whose run.json has that status count.
    """
    base = os.path.join(root, experiment)
    try:
        names = sorted(os.listdir(base), key=_run_sort_key)
    except OSError:
        return None
    for name in reversed(names):
        path = os.path.join(base, name)
        if not is_run_dir(path):
            continue
        if status is not None:
            try:
                if RunDir.open(path).status != status:
                    continue
            except ConfigError:
                continue
        return path
    return None
