"""Schema of the attacker's config (``python -m nodes.attacker``); see docs/security.md.

``spec`` is one attack as :func:`testbed.attack.build` takes it (checked there, with
its own one-line errors); ``rate_pps``: bursts per second; ``burst``: datagrams sent
back to back; ``deadline_s``: the most seconds the sending may take; ``warmup``: one
empty UDP datagram to (``dst``, ``port``) first, then ``warmup_s`` seconds of waiting.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from testbed.schemas import IPv4, Name, NodeBase, Port, Strict


class Warmup(Strict):
    """Where the warm-up datagram goes."""

    dst: IPv4
    port: Port


class AttackerSchema(NodeBase):
    """Every key of the attacker config."""

    name: Name
    spec: dict[str, Any]
    rate_pps: float = Field(2000, ge=1, le=1_000_000)
    burst: int = Field(1, ge=1, le=10_000)
    deadline_s: float = Field(30, gt=0, le=600)
    warmup: Warmup | None = None
    warmup_s: float = Field(0.5, ge=0, le=5)
