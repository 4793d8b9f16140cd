"""``--set KEY=VALUE`` parsing and validation of topology parameters.

Every error is a :class:`~testbed.nodeutil.ConfigError` with a one-line message;
the CLI turns it into exit status 2.
"""

from __future__ import annotations

import math

import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.addressing import MAX_PLAN_ASES, check_fits
from testbed.nodeutil import ConfigError

MAX_ASES = MAX_PLAN_ASES
MAX_CLIENTS = 100_000
"""Clients in all (k), over every client AS."""
MAX_CLIENTS_PER_AS = MAX_CLIENTS
"""One AS may hold the whole audience (a Zipf draw can put 13,000 of 100,000 in one)."""
PER_CLIENT_HOST_LIMIT = 300
"""Above this many clients in all, ``client_hosts=auto`` uses one receiver host per AS."""


def parse_value(text: str) -> Any:
    """Turn a ``--set`` value into int, float, bool, None or str (lists stay strings)."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        if not math.isfinite(value):
            raise ConfigError(f"--set value '{text.strip()}' is not a finite number")
        return value
    return text.strip()


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """Parse ``["ases=4", "clients=10"]`` into a dict; ConfigError on a malformed item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"malformed --set '{item}': expected KEY=VALUE")
        if value.strip() == "":
            raise ConfigError(f"malformed --set '{item}': empty value")
        out[key] = parse_value(value)
    return out


def _int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a number or a comma-separated list of numbers")
    if isinstance(value, int):
        return [value]
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [p for p in str(value).split(",") if p.strip()]
    try:
        return [int(str(v).strip()) for v in items]
    except ValueError:
        raise ConfigError(f"{what} must be a number or a comma-separated list of numbers, got '{value}'") from None


@dataclass
class TopoParams:
    """The validated parameters of the paper topology."""

    ases: int = 4
    clients_per_as: list[int] = field(default_factory=lambda: [10] * 4)
    capable: list[bool] = field(default_factory=lambda: [True] * 4)
    client_hosts: str = "per-client"  # or "per-as"
    distribution: str = "fixed"
    seed: int = 1
    core: str = "star"
    """``star``: one core router; ``tree``: a root router and ``transit`` transit routers routed by OSPF (FRR)."""
    transit: int = 0
    """Transit routers of a tree core (0 for a star)."""
    attach: str = "round-robin"
    """How client ASes are attached to transit routers: ``round-robin`` or ``random`` (seeded by ``seed``)."""

    @property
    def total_clients(self) -> int:
        """k, the number of clients."""
        return sum(self.clients_per_as)

    @property
    def active_ases(self) -> int:
        """j, the number of client ASes with at least one client."""
        return sum(1 for n in self.clients_per_as if n > 0)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return asdict(self)


TOPO_KEYS = {"ases", "clients", "distribution", "total", "zipf_s", "seed", "capable", "client_hosts",
             "core", "transit", "attach"}
MAX_TRANSIT = 50


def core_params(values: dict[str, Any], ases: int) -> tuple[str, int, str]:
    """(core, transit, attach) from ``core=star|tree``, ``transit=N`` (tree: 1..min(ases, 50), default 2)
    and ``attach=round-robin|random``; one-line ConfigError otherwise."""
    core = str(values.get("core", "star"))
    if core not in ("star", "tree"):
        raise ConfigError(f"core must be star or tree, got '{core}'")
    attach = str(values.get("attach", "round-robin"))
    if attach not in ("round-robin", "random"):
        raise ConfigError(f"attach must be round-robin or random, got '{attach}'")
    if core == "star":
        if values.get("transit") not in (None, 0):
            raise ConfigError("transit needs core=tree")
        return core, 0, attach
    transit = values.get("transit", min(2, ases))
    limit = min(ases, MAX_TRANSIT)
    if isinstance(transit, bool) or not isinstance(transit, int) or not 1 <= transit <= limit:
        why = "one per client AS at most" if limit == ases else f"at most {MAX_TRANSIT}"
        raise ConfigError(f"transit must be a whole number within 1..{limit} ({why}), got '{_shown(transit)}'")
    return core, transit, attach


def zipf_counts(total: int, ases: int, exponent: float, seed: int) -> list[int]:
    """Spread ``total`` clients over ``ases`` ASes, AS of rank r drawn with probability ~ 1/r^s (seeded)."""
    weights = [1.0 / (rank ** exponent) for rank in range(1, ases + 1)]
    rng = random.Random(seed)
    counts = [0] * ases
    for idx in rng.choices(range(ases), weights=weights, k=total):
        counts[idx] += 1
    return counts


def uniform_counts(total: int, ases: int) -> list[int]:
    """Spread ``total`` clients over ``ases`` ASes as evenly as possible."""
    base, extra = divmod(total, ases)
    return [base + (1 if i < extra else 0) for i in range(ases)]


def _capable(value: Any, ases: int) -> list[bool]:
    if value is True or value in ("all",):
        return [True] * ases
    if value is False or value in ("none",):
        return [False] * ases
    if isinstance(value, float):  # a fraction of the client ASes, the first ones
        frac = value
        if not 0.0 <= frac <= 1.0:
            raise ConfigError(f"capable fraction must be within 0..1, got {value}")
        n = round(frac * ases)
        return [i < n for i in range(ases)]
    listed = _int_list(value, "capable")
    bad = [a for a in listed if not 1 <= a <= ases]
    if bad:
        raise ConfigError(f"capable lists AS {bad[0]}, but client ASes are numbered 1..{ases}")
    return [i + 1 in listed for i in range(ases)]


def topo_params(values: dict[str, Any]) -> TopoParams:
    """Validate topology keys of ``values`` (others are ignored) into :class:`TopoParams`."""
    ases = values.get("ases", 4)
    if isinstance(ases, bool) or not isinstance(ases, int):
        raise ConfigError(f"ases must be a whole number, got '{_shown(ases)}'")
    if not 1 <= ases <= MAX_ASES:
        raise ConfigError(f"ases must be within 1..{MAX_ASES}, got {ases}")
    dist = str(values.get("distribution", "fixed"))
    seed = values.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed must be a whole number, got '{seed}'")
    if dist == "fixed":
        counts = _int_list(values.get("clients", 10), "clients")
        if len(counts) == 1:
            counts = counts * ases
        if len(counts) != ases:
            raise ConfigError(f"clients lists {len(counts)} numbers but there are {ases} ASes")
    elif dist in ("uniform", "zipf"):
        total = values.get("total", values.get("clients", 10 * ases))
        if isinstance(total, bool) or not isinstance(total, int):
            raise ConfigError(f"total (clients in all) must be a whole number, got '{total}'")
        if total < 0:
            raise ConfigError(f"total must not be negative, got {total}")
        if total > MAX_CLIENTS:
            raise ConfigError(f"total must be at most {MAX_CLIENTS:,} clients, got {total}")
        if dist == "uniform":
            counts = uniform_counts(total, ases)
        else:
            s = values.get("zipf_s", 1.0)
            if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
                raise ConfigError(f"zipf_s must be a positive number, got '{s}'")
            counts = zipf_counts(total, ases, float(s), seed)
    else:
        raise ConfigError(f"unknown distribution '{dist}' (choose fixed, uniform or zipf)")
    if any(n < 0 for n in counts):
        raise ConfigError("clients must not be negative")
    if any(n > MAX_CLIENTS_PER_AS for n in counts):
        raise ConfigError(f"at most {MAX_CLIENTS_PER_AS:,} clients per AS")
    if sum(counts) > MAX_CLIENTS:
        raise ConfigError(f"at most {MAX_CLIENTS:,} clients in all, got {sum(counts)}")
    capable = _capable(values.get("capable", "all"), ases)
    hosts = str(values.get("client_hosts", "auto"))
    if hosts == "auto":
        hosts = "per-client" if sum(counts) <= PER_CLIENT_HOST_LIMIT else "per-as"
    if hosts not in ("per-client", "per-as"):
        raise ConfigError(f"client_hosts must be auto, per-client or per-as, got '{hosts}'")
    core, transit, attach = core_params(values, ases)
    params = TopoParams(ases=ases, clients_per_as=counts, capable=capable, client_hosts=hosts,
                        distribution=dist, seed=seed, core=core, transit=transit, attach=attach)
    check_fits(params)  # the addressing plan's blocks and name lengths (testbed.addressing)
    return params


# ----------------------------------------------------------------- stream and LISP parameters of experiments

MIN_CHUNK_BYTES, MAX_CHUNK_BYTES = 1200, 1400
"""The paper's chunk sizes; the source refuses others (:mod:`testbed.schemas.source`)."""
MIN_BITRATE = 300_000
"""Both content kinds are ffmpeg's CBR test pattern, whose video does not fit below this (b/s)."""
MAX_BITRATE = 100_000_000
MAX_SPEED = 1000.0
"""The source's limit on the speed multiplier."""
MAX_CHUNKS = 10_000_000
MAX_TIMER_S = 86_400.0
CONTENTS = ("file", "ffmpeg")
"""``content=file``: one TS file generated per run; ``content=ffmpeg``: a live test pattern."""


def _shown(value: Any) -> str:
    """A --set value as the user typed it, near enough: 1e9 (parsed as a float) shows as 1e+09, not 1000000000.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _whole(params: dict[str, Any], key: str, low: int, high: int, why: str = "") -> None:
    if key not in params:
        return
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be a whole number, got '{_shown(value)}'")
    if not low <= value <= high:
        raise ConfigError(f"{key} must be within {low}..{high}{why}, got {value}")


def _positive(params: dict[str, Any], key: str, high: float, unit: str = "") -> None:
    if key not in params:
        return
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key} must be a number{unit}, got '{value}'")
    if not 0 < value <= high:
        raise ConfigError(f"{key} must be above 0 and at most {high:g}{unit}, got {value}")


def _flag(params: dict[str, Any], key: str) -> None:
    if key in params and not isinstance(params[key], bool):
        raise ConfigError(f"{key} must be true or false, got '{params[key]}'")


def check_stream(params: dict[str, Any]) -> None:
    """Check the stream and LISP parameters every experiment may carry, before anything is built.

    What a daemon would refuse later is refused here, one ConfigError line each:
    ``chunks`` 1..10,000,000; ``seconds`` > 0 and long enough for one chunk;
    ``bitrate`` 300,000..100,000,000 b/s (ffmpeg's test pattern); ``chunk_bytes``
    within 1200..1400 and a multiple of 188 (both contents are MPEG-TS, so 1316);
    ``speed`` in (0, 1000]; ``max_pps`` >= 1; ``content`` file or ffmpeg; ``player``
    a boolean or ``vlc``; ``keep_records`` a boolean; ``register_interval`` and ``expiry`` (seconds)
    in (0, 86400], the expiry no shorter than the register interval (else every
    registration would lapse between two Map-Registers).
    """
    from testbed.stream.content import check_chunk_bytes
    _whole(params, "chunks", 1, MAX_CHUNKS)
    _positive(params, "seconds", MAX_TIMER_S, " (seconds)")
    _whole(params, "bitrate", MIN_BITRATE, MAX_BITRATE, " b/s (ffmpeg's test pattern needs 300,000)")
    _whole(params, "chunk_bytes", MIN_CHUNK_BYTES, MAX_CHUNK_BYTES, " (the paper's chunk sizes)")
    if "chunk_bytes" in params:
        try:
            check_chunk_bytes("ffmpeg", params["chunk_bytes"])  # both contents are MPEG-TS
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    _positive(params, "speed", MAX_SPEED)
    _whole(params, "max_pps", 1, 10_000_000)
    if "content" in params and params["content"] not in CONTENTS:
        raise ConfigError(f"content must be {' or '.join(CONTENTS)}, got '{params['content']}'")
    if params.get("player") != "vlc":  # player: a boolean (ffmpeg) or "vlc"
        _flag(params, "player")
    _flag(params, "keep_records")
    _positive(params, "register_interval", MAX_TIMER_S, " (seconds)")
    _positive(params, "expiry", MAX_TIMER_S, " (seconds)")
    if "expiry" in params and params["expiry"] < params.get("register_interval", 60.0):
        raise ConfigError(f"expiry {params['expiry']} s is shorter than register_interval "
                          f"{params.get('register_interval', 60.0)} s: registrations would lapse between refreshes")
    if "seconds" in params and "chunk_bytes" in params and "bitrate" in params:
        if params["seconds"] * params["bitrate"] / (8 * params["chunk_bytes"]) < 1:
            raise ConfigError(f"seconds {params['seconds']} is shorter than one chunk at {params['bitrate']} b/s")


def check_out_dir(path: str) -> None:
    """ConfigError unless a run directory can be made at ``path``.

    The path, or its nearest existing parent, must be a directory in which a
    directory can really be created (a probe, made and removed at once: file
    modes say nothing for root, nor for /proc or a read-only mount).
    """
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise ConfigError(f"--out {path}: {probe} is not a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".corecast-probe-", dir=probe))
    except OSError as exc:
        raise ConfigError(f"--out {path}: {probe} is not writable ({exc.strerror})") from None
