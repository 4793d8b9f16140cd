"""Read a user's clients-per-AS CSV for ``corecast model --csv FILE`` (format: docs/model.md).

UTF-8 text (a byte-order mark is allowed), comma-separated, one header line
naming the columns ``as`` and ``clients`` and optionally ``capable`` (any
order, any case; other columns are ignored), then one row per client AS:

    as,clients,capable
    AS3320,1200,yes
    64500,0,no

``as`` is any non-empty label, unique in the file; ``clients`` a whole number
>= 0; ``capable`` one of yes/no/true/false/1/0 (without the column every AS is
capable, or ``--set capable=FRACTION`` makes the first ones capable). Blank
lines are skipped. Every fault is a one-line :class:`ConfigError` naming the
line: a missing column, an empty file or one without rows, binary data, a
negative or non-whole count, an AS listed twice, a row with too few or too
many fields, more than ``max_ases`` rows or ``max_clients`` clients, a file
over :data:`MAX_BYTES`.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat

import numpy as np

from testbed.nodeutil import ConfigError

MAX_BYTES = 16 * 1024 * 1024
"""Largest CSV read (70,000 ASes take about 2 MB)."""
_WHOLE = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+(\.[0-9]*)?")
_TRUE, _FALSE = {"yes", "true", "1", "y"}, {"no", "false", "0", "n"}


def _text(path: str) -> str:
    """The file's text, or ConfigError (missing, not a regular file, empty, huge, binary, not UTF-8)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"--csv {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"--csv {path}: not a regular file")
    if st.st_size == 0:
        raise ConfigError(f"--csv {path}: the file is empty (expected a header as,clients and one row per AS)")
    if st.st_size > MAX_BYTES:
        raise ConfigError(f"--csv {path}: {st.st_size / 2**20:.0f} MiB is too large (at most "
                          f"{MAX_BYTES // 2**20} MiB; 70,000 ASes take about 2 MB)")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"--csv {path}: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise ConfigError(f"--csv {path}: binary data, not a CSV text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--csv {path}: not UTF-8 text (byte {exc.start})") from None


def _count(cell: str, path: str, line: int) -> int:
    cell = cell.strip()
    if _WHOLE.fullmatch(cell):
        return int(cell)
    if _NEGATIVE.fullmatch(cell):
        raise ConfigError(f"--csv {path}: line {line}: negative client count {cell}")
    raise ConfigError(f"--csv {path}: line {line}: client count '{cell[:40]}' is not a whole number")


def _flag(cell: str, path: str, line: int) -> bool:
    low = cell.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ConfigError(f"--csv {path}: line {line}: capable must be yes or no, got '{cell.strip()[:40]}'")


def read_clients_csv(path: str, max_ases: int, max_clients: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(clients per AS as int64, capable per AS as bool or None without the column), in file order."""
    text = _text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    counts: list[int] = []
    flags: list[bool] = []
    seen: dict[str, int] = {}
    header: list[str] | None = None
    total = 0
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if header is None:
                header = [c.strip().lower() for c in row]
                missing = [c for c in ("as", "clients") if c not in header]
                if missing:
                    raise ConfigError(f"--csv {path}: line {line}: no column '{missing[0]}' in the header "
                                      f"(expected as,clients[,capable])")
                if len(set(header)) != len(header):
                    raise ConfigError(f"--csv {path}: line {line}: a column is named twice in the header")
                i_as, i_n = header.index("as"), header.index("clients")
                i_cap = header.index("capable") if "capable" in header else None
                continue
            if len(row) != len(header):
                raise ConfigError(f"--csv {path}: line {line}: {len(row)} fields, the header has {len(header)}")
            label = row[i_as].strip()
            if not label:
                raise ConfigError(f"--csv {path}: line {line}: empty AS")
            if label in seen:
                raise ConfigError(f"--csv {path}: line {line}: AS '{label[:40]}' is listed twice "
                                  f"(first on line {seen[label]})")
            seen[label] = line
            n = _count(row[i_n], path, line)
            total += n
            if len(seen) > max_ases:
                raise ConfigError(f"--csv {path}: more than {max_ases:,} ASes")
            if total > max_clients:
                raise ConfigError(f"--csv {path}: more than {max_clients:,} clients in all (line {line})")
            counts.append(n)
            if i_cap is not None:
                flags.append(_flag(row[i_cap], path, line))
    except csv.Error as exc:
        raise ConfigError(f"--csv {path}: line {reader.line_num}: {exc}") from None
    if header is None:
        raise ConfigError(f"--csv {path}: no header (expected as,clients[,capable])")
    if not counts:
        raise ConfigError(f"--csv {path}: a header but no ASes")
    capable = np.array(flags, dtype=bool) if i_cap is not None else None
    return np.array(counts, dtype=np.int64), capable
