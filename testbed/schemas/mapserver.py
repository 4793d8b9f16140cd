"""Schema of the Map-Server/Map-Resolver's config (``python -m nodes.mapserver``).

Written by :func:`testbed.net.lisp.mapserver_config`. A site's ``key`` is used
as the UTF-8 bytes of the string; ``expiry_s`` is how long a registration lives
without a refresh (RFC 9301 section 8.2 suggests 3 Map-Register intervals);
``negative_ttl_min`` the TTL of negative Map-Replies, in minutes.
"""

from __future__ import annotations

import ipaddress

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from testbed.lisp.mapserver import DEFAULT_MAX_TTL

from testbed.schemas import IPv4, Name, NodeBase, OutPath, Prefix, Strict
from testbed.wire.constants import LISP_CONTROL_PORT

Algorithm = Literal["sha256", "sha1"]


Key = Annotated[str, Field(min_length=1, max_length=1024)]


def _key_id(value: str) -> str:
    if not value.isdigit() or not 0 <= int(value) <= 255:
        raise ValueError("a key id is a whole number 0-255")
    return value


class SiteConfig(Strict):
    """One LISP site: its name, its keys and algorithms, the EID prefixes it may register, its RLOC space."""

    name: Name
    key: Key | None = None
    """The Key ID 0 key."""
    keys: dict[Annotated[str, AfterValidator(_key_id)], Key] = Field(default_factory=dict, max_length=256)
    """More keys by Key ID (RFC 9301 section 5.6): {"1": "secret", ...}."""
    algorithms: list[Algorithm] = Field(default_factory=lambda: ["sha256", "sha1"], min_length=1, max_length=2)
    prefixes: list[Prefix] = Field(min_length=1, max_length=1024)
    rloc_prefixes: list[Prefix] | None = Field(None, min_length=1, max_length=1024)
    """RLOCs this site may register (None: the map-server's ``rloc_prefixes``)."""

    @model_validator(mode="after")
    def _one_key_zero(self) -> "SiteConfig":
        if self.key is not None and "0" in self.keys:
            raise ValueError(f"site {self.name}: Key ID 0 given twice ('key' and 'keys')")
        if self.key is None and not self.keys:
            raise ValueError(f"site {self.name}: needs 'key' or 'keys'")
        return self

    def key_table(self) -> tuple[bytes | None, dict[int, bytes]]:
        """(Key ID 0 key, {key id: key}) as UTF-8 bytes."""
        return (self.key.encode() if self.key is not None else None), {int(k): v.encode() for k, v in self.keys.items()}


class MapServerConfig(NodeBase):
    """Every key of the map-server config."""

    name: Name = "mapserver"
    listen: IPv4
    port: int = Field(LISP_CONTROL_PORT, ge=0, le=65535)
    """UDP port to bind (0: any free port, reported in the ready file)."""
    expiry_s: float = Field(180.0, gt=0, le=86400 * 7)
    negative_ttl_min: int = Field(15, ge=0, le=0xFFFFFFFF)
    max_ttl_min: int = Field(DEFAULT_MAX_TTL, ge=1, le=0xFFFFFFFF)
    """Cap on registered record TTLs (minutes)."""
    rloc_prefixes: list[Prefix] = Field(default_factory=lambda: ["0.0.0.0/0"], min_length=1, max_length=1024)
    """RLOC space a registration's locators must lie in (the testbed renders its RLOC block)."""
    sites: list[SiteConfig] = Field(max_length=100_000)
    table_file: OutPath | None = None
    """The registration table: loaded at start, written when it changed and at exit."""

    @model_validator(mode="after")
    def _unique_sites(self) -> "MapServerConfig":
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("sites: a site name is listed twice")
        owner: dict[ipaddress.IPv4Network, str] = {}
        for site in self.sites:
            for text in site.prefixes:
                net = ipaddress.ip_network(text, strict=False)
                if net in owner:
                    where = "twice in site" if owner[net] == site.name else f"in sites {owner[net]} and"
                    raise ValueError(f"sites: prefix {net} is listed {where} {site.name}")
                owner[net] = site.name
        return self
