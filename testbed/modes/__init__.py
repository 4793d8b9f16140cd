"""Delivery modes as small classes, a registry, and the ``modes`` experiment parameter.

```python
from testbed.modes import MODES, get_mode, parse_modes
parse_modes("unicast,corecast")      # (UnicastMode, CoreCastMode)
get_mode("corecast").model           # the model of CoreCast (testbed.modemodels)
```
Every experiment accepts ``--set modes=NAME[,NAME...]`` (default
:data:`DEFAULT_MODES`); an unknown name is a one-line
:class:`~testbed.nodeutil.ConfigError` (the CLI exits 2 before building anything).
A new mode is a :class:`Mode` subclass added with :func:`register`.
"""

from __future__ import annotations

from typing import Any

from testbed.modes.base import Mode
from testbed.modes.lisp import CoreCastBatchMode, CoreCastMode, CoreCastSrcMode, UnicastMode
from testbed.modes.ipmc import IpmcMode
from testbed.modes.lispmc import LispMcMode
from testbed.modes.p2p import P2PMode
from testbed.nodeutil import ConfigError

MODES: dict[str, type[Mode]] = {}
"""Every delivery mode by name, in display order."""

DEFAULT_MODES = ("unicast", "corecast")
"""The modes an experiment streams when ``modes`` is not set."""


def register(cls: type[Mode]) -> type[Mode]:
    """Add a mode class to :data:`MODES` (usable as a class decorator); ValueError on a clash or no name."""
    if not (isinstance(cls, type) and issubclass(cls, Mode)) or not cls.name:
        raise ValueError(f"{cls!r} is not a named Mode subclass")
    if MODES.get(cls.name, cls) is not cls:
        raise ValueError(f"mode {cls.name!r} is already registered by {MODES[cls.name].__name__}")
    MODES[cls.name] = cls
    return cls


for _cls in (UnicastMode, CoreCastMode, CoreCastBatchMode, CoreCastSrcMode, LispMcMode, IpmcMode, P2PMode):
    register(_cls)


def get_mode(mode: str | type[Mode]) -> type[Mode]:
    """The mode class for a name (or the class itself); ConfigError naming the known modes otherwise."""
    if isinstance(mode, type) and issubclass(mode, Mode):
        return mode
    try:
        return MODES[mode]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown mode '{mode}' (known: {', '.join(MODES)})") from None


def parse_modes(value: Any) -> tuple[type[Mode], ...]:
    """``"unicast,corecast"`` (or a list of names/classes) as mode classes, in the given order.

    ConfigError (one line) on an unknown or repeated name, or an empty list.
    """
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, str):
        items = [v.strip() for v in value.split(",") if v.strip()]
    else:
        raise ConfigError(f"modes must be a comma-separated list of mode names (known: {', '.join(MODES)}), "
                          f"got '{value}'")
    if not items:
        raise ConfigError(f"modes must name at least one mode (known: {', '.join(MODES)})")
    out = tuple(get_mode(item) for item in items)
    names = [m.name for m in out]
    repeated = [n for i, n in enumerate(names) if n in names[:i]]
    if repeated:
        raise ConfigError(f"modes lists '{repeated[0]}' twice")
    return out


def selected_modes(params: dict[str, Any]) -> tuple[str, ...]:
    """The names of the modes an experiment streams: its ``modes`` parameter, else :data:`DEFAULT_MODES`."""
    if params.get("modes") is None:
        return DEFAULT_MODES
    return tuple(m.name for m in parse_modes(params["modes"]))


__all__ = ["DEFAULT_MODES", "IpmcMode", "LispMcMode", "MODES", "CoreCastMode", "Mode", "P2PMode", "UnicastMode", "get_mode", "parse_modes",
           "register", "selected_modes"]
