"""Schemas of the node programs' JSON configs (pydantic v2), one module per program.

Every field of every node config is typed and bounded here; a node validates its
config with :func:`parse` before it opens a socket or a file, and a bad field
becomes one :class:`~testbed.nodeutil.ConfigError` line naming the field, the
rule and the value (``node_main`` prints it and exits 2). Validation is strict:
no coercion (``"5"`` is not a port, ``1`` is not ``true``), unknown fields are
rejected (a misspelt key would otherwise be ignored), and every path the node
will write must lie in an existing, writable directory.

The shared field types live here: :data:`Port`, :data:`IPv4`, :data:`Prefix`,
:data:`IfName`, :data:`OutPath`, :data:`InFile`, :data:`LogLevel`.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from testbed.nodeutil import ConfigError

M = TypeVar("M", bound=BaseModel)


def _ipv4(value: str) -> str:
    """A dotted-quad IPv4 address, exactly (``10.1`` or ``010.0.0.1`` are refused)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("not an IPv4 address") from None
    return value


def _prefix(value: str) -> str:
    """An IPv4 prefix ``a.b.c.d/n`` with n in 0..32 and no host bits set."""
    if "/" not in value:
        raise ValueError("not an IPv4 prefix a.b.c.d/n")
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 prefix ({exc})") from None
    return value


def _ifname(value: str) -> str:
    """A Linux interface name: 1 to 15 bytes, no '/', whitespace or ':' (IFNAMSIZ - 1)."""
    if not 1 <= len(value.encode()) <= 15 or any(c in value for c in "/: \t\n") or value in (".", ".."):
        raise ValueError("not an interface name (1 to 15 characters, no '/', ':' or spaces)")
    return value


def check_out_path(value: str) -> str:
    """A file the node will write: its directory must exist and be writable."""
    if not value:
        raise ValueError("empty path")
    directory = os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(directory):
        raise ValueError(f"directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ValueError(f"directory {directory} is not writable")
    if os.path.isdir(value):
        raise ValueError("is a directory")
    return value


def check_in_file(value: str) -> str:
    """A file the node will read: it must exist and be readable."""
    if not os.path.isfile(value):
        raise ValueError("no such file")
    if not os.access(value, os.R_OK):
        raise ValueError("not readable")
    return value


Port = Annotated[int, Field(ge=1, le=65535)]
"""A UDP port a node binds or sends to."""
IPv4 = Annotated[str, AfterValidator(_ipv4)]
Prefix = Annotated[str, AfterValidator(_prefix)]
IfName = Annotated[str, AfterValidator(_ifname)]
OutPath = Annotated[str, AfterValidator(check_out_path)]
InFile = Annotated[str, AfterValidator(check_in_file)]
Name = Annotated[str, Field(min_length=1, max_length=64)]
LogLevel = Literal["debug", "info", "warning", "error"]


class Strict(BaseModel):
    """Base of every schema: strict types, unknown fields refused, aliases (``as``) accepted by name."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True, frozen=True)


class NodeBase(Strict):
    """Fields every node config has (the testbed's Daemon class fills them in)."""

    log_level: LogLevel = "info"
    ready_file: OutPath | None = None
    status_file: OutPath | None = None


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":
            out += " (key)"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe_error(err: ValidationError) -> str:
    """The first error of ``err`` as one line: ``config 'field.sub[0]': rule, got value``."""
    first = err.errors(include_url=False)[0]
    kind, loc = first["type"], _where(tuple(first["loc"]))
    if kind == "missing":
        return f"config lacks '{loc}'"
    if kind == "extra_forbidden":
        return f"config '{loc}': unknown field"
    msg = first["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    msg = msg[0].lower() + msg[1:] if msg else "invalid"
    value = first.get("input")
    if loc and not isinstance(value, dict):
        return f"config '{loc}': {msg}, got {_short(value)}"
    if loc:
        return f"config '{loc}': {msg}"
    return f"config: {msg}"


def parse(model: type[M], cfg: dict[str, Any]) -> M:
    """Validate ``cfg`` against ``model``; raise ConfigError with one line naming the first bad field.

    Validation runs in pydantic's JSON mode (the configs are JSON: an array is a valid tuple).
    """
    try:
        text = json.dumps(cfg, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config is not JSON data: {exc}") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as err:
        raise ConfigError(describe_error(err).replace("\n", " ")) from None
