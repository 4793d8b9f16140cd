"""What a run was made with, beyond Python's own versions: the dependency lock and Debian packages.

``run.json`` (``versions``, see :func:`testbed.results.versions`) records

* ``requirements_lock``: the SHA-256 of ``requirements.lock``, the pinned and
  hashed Python dependencies that ``scripts/setup.sh`` installs (None if the
  file is missing, e.g. an installed copy outside the repository);
* ``debian``: the installed version of each Debian package the testbed runs
  (``dpkg-query``), None for one that is not installed; an empty mapping on a
  system without dpkg.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCK_FILE = os.path.join(PROJECT_ROOT, "requirements.lock")

DEBIAN_PACKAGES = ("mininet", "frr", "tshark", "tcpdump", "ffmpeg", "iproute2", "nftables", "vlc-bin",
                   "bridge-utils", "python3")
"""The Debian packages whose versions a run records (scripts/setup.sh installs them; frr and vlc-bin if used)."""


def file_sha256(path: str) -> str | None:
    """Hex SHA-256 of the file at ``path``, or None if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def lock_sha256(path: str = LOCK_FILE) -> str | None:
    """SHA-256 of the dependency lock (``requirements.lock``), None if absent."""
    return file_sha256(path)


def parse_dpkg_query(text: str) -> dict[str, str]:
    """``{package: version}`` from ``dpkg-query -W -f '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'``
    output; only installed packages (status ``ii``) count, architecture suffixes are dropped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, version, status = parts
        if status.strip() == "ii" and version:
            out[name.split(":")[0]] = version
    return out


@functools.lru_cache(maxsize=4)
def debian_versions(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> dict[str, str | None]:
    """``{package: version or None}`` for ``packages``; ``{}`` where dpkg-query is missing or hangs."""
    try:
        proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${db:Status-Abbrev}\n", *packages],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return {}
    found = parse_dpkg_query(proc.stdout)
    return {name: found.get(name) for name in packages}
