"""argparse ``type=`` checkers shared by every bench script: a bad value is argparse's usage and ONE error line,
exit 2, before any work, lock or network (``bench_lpm.py --repeat 0`` was a ValueError traceback,
``bench_lispmc.py --rounds 0`` overwrote docs/bench-results/lispmc.json with an empty result).

Each factory returns a callable ``str -> value`` that raises :class:`argparse.ArgumentTypeError` with a
one-line reason; argparse prefixes it with ``argument --flag:``. Import them with ``from args import ...``
(bench/ is on sys.path when a script runs): never ``import args``, since the scripts name their
namespace ``args``.
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

MAX_COUNT = 100_000_000  # no bench loop should run longer than this many iterations
MAX_SECONDS = 3600.0  # one trial or timeout; a longer one is a typo


def _fail(why: str, text: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{why}, got {text!r}")


def count(minimum: int = 1, maximum: int = MAX_COUNT) -> Callable[[str], int]:
    """A whole number within ``minimum..maximum`` (``minimum`` 0 only where 0 has a meaning the help states)."""
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise _fail(f"must be a whole number within {minimum}..{maximum}", text) from None
        if not minimum <= value <= maximum:
            raise _fail(f"must be a whole number within {minimum}..{maximum}", text)
        return value
    parse.__name__ = "count"
    return parse


def seconds(maximum: float = MAX_SECONDS) -> Callable[[str], float]:
    """A duration in seconds: finite, above 0 and at most ``maximum``."""
    return positive(maximum, "seconds")


def positive(maximum: float = math.inf, unit: str = "") -> Callable[[str], float]:
    """A finite number above 0 and at most ``maximum`` (a rate, a duration)."""
    bound = "" if math.isinf(maximum) else f" and at most {maximum:g}"
    why = f"must be a finite number above 0{bound}" + (f" ({unit})" if unit else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _fail(why, text) from None
        if not (math.isfinite(value) and 0 < value <= maximum):
            raise _fail(why, text)
        return value
    parse.__name__ = "number"
    return parse


def fraction(low: float = 0.0, high: float = 1.0) -> Callable[[str], float]:
    """A finite number within ``low..high`` (both included)."""
    why = f"must be a number within {low:g}..{high:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _fail(why, text) from None
        if not (math.isfinite(value) and low <= value <= high):
            raise _fail(why, text)
        return value
    parse.__name__ = "fraction"
    return parse


def count_list(minimum: int = 1, maximum: int = MAX_COUNT) -> Callable[[str], list[int]]:
    """A comma-separated, non-empty list of whole numbers, each within ``minimum..maximum`` (``"4,20,50"``)."""
    one = count(minimum, maximum)
    why = f"must be a comma-separated list of whole numbers within {minimum}..{maximum}"

    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise _fail(why, text)
        try:
            return [one(p) for p in parts]
        except argparse.ArgumentTypeError:
            raise _fail(why, text) from None
    parse.__name__ = "list"
    return parse


def choice_list(choices: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A comma-separated, non-empty list of names from ``choices`` (``"exec,fork"``), duplicates dropped."""
    why = f"must be a comma-separated list of {', '.join(choices)}"

    def parse(text: str) -> list[str]:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(p not in choices for p in parts):
            raise _fail(why, text)
        return list(dict.fromkeys(parts))
    parse.__name__ = "list"
    return parse


def ipv4(text: str) -> str:
    """A dotted-quad IPv4 address."""
    import ipaddress
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        raise _fail("must be an IPv4 address", text) from None
    return text
