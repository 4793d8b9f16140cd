"""``corecast decode --tshark``: a capture through tshark with the CoreCast dissector.

The dissector is the Lua plugin ``scripts/wireshark/corecast.lua`` of this
repository (docs/protocol.md, "In Wireshark"); it is loaded with
``-X lua_script:PATH`` so that it works whether or not scripts/setup.sh
installed it into a Wireshark plugin folder (loading it twice is harmless).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent / "scripts" / "wireshark" / "corecast.lua"
"""The dissector in the source tree (the project is installed editable by scripts/setup.sh)."""


def tshark_command(path: str, detail: bool = False, limit: int | None = None, display_filter: str | None = None,
                   tshark: str = "tshark") -> list[str]:
    """The tshark argv: summary lines (``detail``: the full tree, ``-V``), at most ``limit`` packets,
    only those matching ``display_filter`` (e.g. ``corecast.type == 2``)."""
    cmd = [tshark, "-X", f"lua_script:{PLUGIN}", "-n", "-r", path]
    if detail:
        cmd.append("-V")
    if limit is not None:
        cmd += ["-c", str(limit)]
    if display_filter:
        cmd += ["-Y", display_filter]
    return cmd


def tshark_decode(path: str, detail: bool = False, limit: int | None = None,
                  display_filter: str | None = None) -> int:
    """Print the capture as tshark dissects it with the CoreCast plugin; 0, or 2 with a one-line error."""
    tshark = shutil.which("tshark")
    if tshark is None:
        print("corecast decode: tshark is not installed (apt-get install tshark)", file=sys.stderr)
        return 2
    if not PLUGIN.is_file():
        print(f"corecast decode: the CoreCast dissector {PLUGIN} is missing", file=sys.stderr)
        return 2
    if not Path(path).is_file():
        print(f"corecast decode: {path}: {'a directory' if Path(path).is_dir() else 'no such file'}",
              file=sys.stderr)
        return 2
    from testbed.capfile import CaptureError, read_capture
    try:  # the same judgement of the file as without --tshark: a pcap/pcapng whose link type we read
        next(iter(read_capture(path)), None)
    except CaptureError as exc:
        print(f"corecast decode: {exc}", file=sys.stderr)
        return 2
    try:
        proc = subprocess.run(tshark_command(path, detail, limit, display_filter, tshark),
                              stderr=subprocess.PIPE, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        print("corecast decode: tshark did not finish within an hour", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    errors = [line for line in proc.stderr.splitlines() if line.strip() and "Running as user" not in line]
    if proc.returncode != 0:
        words = [line.strip() for line in errors if any(c.isalpha() for c in line)]  # not tshark's caret line
        print(f"corecast decode: tshark failed: {'; '.join(words)[:200] or 'exit status %d' % proc.returncode}",
              file=sys.stderr)
        return 2
    return 0
