"""Schema of the streaming source's config (``python -m nodes.source``); see docs/streaming.md.

Units: ``bitrate`` bits/s, ``chunk_bytes`` bytes, seconds for ``*_s`` and
``start_at`` (wall clock, ``time.time()``). ``content`` is "ffmpeg" (a live
MPEG-TS test pattern) or "file:/path"; MPEG-TS content takes only chunk sizes
that are multiples of 188 (:func:`testbed.stream.content.check_chunk_bytes`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from testbed.schemas import IPv4, Name, NodeBase, OutPath, Port, Strict, check_in_file, check_out_path
from testbed.schemas.peer import SourceP2P
from testbed.stream.content import MIN_FFMPEG_BITRATE, check_chunk_bytes
from testbed.stream.sender import MODES
from testbed.wire.constants import CORECAST_PORT

MIN_CHUNK, MAX_CHUNK = 1200, 1400
"""The paper's chunk sizes (bytes): a CoreCast DATA (48 + P) and a unicast chunk (64 + P) fit a 1,500-byte core."""
MAX_BITRATE = 10_000_000_000
UNIX_PATH_MAX = 107
"""sun_path holds 108 bytes, the last one a NUL."""


def _content(value: str) -> str:
    if value == "ffmpeg":
        return value
    if not value.startswith("file:") or len(value) == 5:
        raise ValueError("content must be 'ffmpeg' or 'file:/path'")
    check_in_file(value[5:])
    return value


def _socket_path(value: str) -> str:
    if len(value.encode()) > UNIX_PATH_MAX:
        raise ValueError(f"a Unix socket path holds at most {UNIX_PATH_MAX} bytes")
    return check_out_path(value)


Content = Annotated[str, AfterValidator(_content)]
SocketPath = Annotated[str, AfterValidator(_socket_path)]


def _mode(value: str) -> str:
    if value not in (*MODES, "p2p"):
        raise ValueError(f"mode must be one of {', '.join(MODES)}, p2p")
    return value


class Service(Strict):
    """The ITR's CoreCast service address (corecast mode)."""

    addr: IPv4
    port: Port = CORECAST_PORT


class Control(Strict):
    """The UDP control socket (join/leave commands; port 0: any free port, in the ready file)."""

    addr: IPv4 = "127.0.0.1"
    port: int = Field(ge=0, le=65535)


class SourceSchema(NodeBase):
    """Every key of the source config."""

    name: Name
    mode: Annotated[str, AfterValidator(_mode)]
    eid: IPv4
    src_port: Port = 5000
    stream_id: int = Field(1, ge=0, le=0xFFFFFFFF)
    chunk_bytes: int = Field(1316, ge=MIN_CHUNK, le=MAX_CHUNK)
    bitrate: int = Field(1_000_000, gt=0, le=MAX_BITRATE)
    speed: float = Field(1.0, gt=0, le=1000)
    chunks: int | None = Field(None, ge=1, le=100_000_000)
    duration_s: float | None = Field(None, gt=0, le=86400 * 7)
    content: Content = "ffmpeg"
    service: Service | None = None
    clients: list[tuple[IPv4, Port]] = Field(default_factory=list, max_length=1_000_000)
    control: Control | None = None
    control_socket: SocketPath | None = None
    start_at: float | None = Field(None, ge=0)
    stall_timeout_s: float = Field(5.0, gt=0, le=600)
    max_pps: float | None = Field(None, gt=0, le=10_000_000)
    """Datagrams/s cap inside a chunk: a chunk's k datagrams are spread over k / max_pps s (None: one burst)."""
    record_file: OutPath | None = None
    sent_file: OutPath | None = None
    p2p: SourceP2P | None = None
    """Mode p2p: the tracker and the push (testbed.schemas.peer.SourceP2P; defaults when absent)."""
    map_resolver: IPv4 | None = None
    """Mode corecast-src: the Map-Resolver the source asks for its clients' mappings (testbed.stream.srcmap)."""

    @model_validator(mode="after")
    def _consistent(self) -> "SourceSchema":
        if self.chunks is not None and self.duration_s is not None:
            raise ValueError("give 'chunks' or 'duration_s', not both")
        if self.mode.startswith("corecast") and self.service is None:
            raise ValueError(f"{self.mode} mode needs 'service' (the ITR's CoreCast service address)")
        if self.mode == "corecast-src" and self.map_resolver is None:
            raise ValueError("corecast-src mode needs 'map_resolver' (the source resolves its clients itself)")
        if self.mode in ("lispmc", "ipmc") and (self.service is None or not self.service.addr.startswith("232.")):
            raise ValueError(f"{self.mode} mode needs 'service': the SSM group (232.0.0.0/8) and port it sends to")
        if self.content == "ffmpeg" and self.bitrate < MIN_FFMPEG_BITRATE:
            raise ValueError(f"content ffmpeg needs bitrate >= {MIN_FFMPEG_BITRATE}, got {self.bitrate}")
        check_chunk_bytes(self.content, self.chunk_bytes)
        if len(set(self.clients)) != len(self.clients):
            raise ValueError("clients lists a destination twice")
        return self
