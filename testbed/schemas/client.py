"""Schema of the receiver's config (``python -m nodes.client``); see docs/streaming.md.

``eids``: the client EIDs this host serves (one host per client, or a block per
AS); ``rcvbuf``: the socket receive buffer in bytes; ``player``: ffmpeg (or
VLC, ``player_app: vlc``, pipe mode only) records the stream to ``player_file``
("udp": from the client's socket; "pipe": through this process).
"""

from __future__ import annotations

import ipaddress
import os

from typing import Annotated, Literal

from pydantic import Field, model_validator

from testbed.schemas import IPv4, Name, NodeBase, OutPath, Port, Strict


class Ssm(Strict):
    """A source-specific multicast channel (RFC 4607): source S and group G."""

    source: IPv4
    group: IPv4

    @model_validator(mode="after")
    def _addresses(self) -> "Ssm":
        if not ipaddress.IPv4Address(self.group).is_multicast:
            raise ValueError(f"ssm.group must be a multicast address (224.0.0.0/4), got {self.group}")
        src = ipaddress.IPv4Address(self.source)
        if src.is_multicast or src.is_unspecified:
            raise ValueError(f"ssm.source must be a unicast address, got {self.source}")
        return self


class ClientSchema(NodeBase):
    """Every key of the client config."""

    name: Name
    port: Port = 6000
    bind: IPv4 = "0.0.0.0"
    eids: list[IPv4] = Field(default_factory=list, max_length=1_000_000)
    record_file: OutPath | None = None
    player: bool = False
    player_mode: Literal["udp", "pipe"] = "udp"
    player_app: Literal["ffmpeg", "vlc"] = "ffmpeg"
    player_file: OutPath | None = None
    count_frames: bool = True
    rcvbuf: int = Field(8 << 20, ge=4096, le=1 << 30)
    status_interval_s: float = Field(1.0, gt=0, le=3600)
    """Seconds between status-file writes (the run sets it from the number of ASes: testbed.net.lisp.status_interval)."""
    ssm: Ssm | None = None
    """(S, G): join this source-specific multicast channel (IP_ADD_SOURCE_MEMBERSHIP, mode lispmc); each of its
    datagrams counts for every EID of ``eids`` (one copy per host, as multicast delivers)."""
    ssm_join_dir: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    """With ``ssm``: join only once a file named after one of ``eids`` exists in this directory (the compare
    experiment's timed joins); the join time is the status file's ``ssm_joined``. Without it: join at start."""

    @model_validator(mode="after")
    def _player(self) -> "ClientSchema":
        if self.player and self.player_file is None:
            raise ValueError("player mode needs 'player_file' (the recorded .ts)")
        if self.player and len(self.eids) > 1:
            raise ValueError("player mode serves one EID ('eids' lists more)")
        if self.ssm_join_dir is not None and (self.ssm is None or (self.player and self.player_mode == "udp")):
            raise ValueError("ssm_join_dir needs 'ssm' (the channel to join) and no udp-mode player")
        if self.ssm_join_dir is not None and not os.path.isdir(self.ssm_join_dir):
            raise ValueError(f"ssm_join_dir must be an existing directory, got '{self.ssm_join_dir}'")
        if self.player and self.player_app == "vlc" and self.player_mode != "pipe":
            raise ValueError("the VLC player reads the stream through this process: player_mode must be 'pipe'")
        return self
