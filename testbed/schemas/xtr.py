"""Schema of the xTR's config (``python -m nodes.xtr``), written by :func:`testbed.net.lisp.xtr_config`.

Units: seconds for ``*_s``, bytes for MTUs; ``alg_id`` is the RFC 9301 Map-Register
authentication algorithm (1 HMAC-SHA-1-96, 2 HMAC-SHA-256-128).
"""

from __future__ import annotations

from pydantic import Field, model_validator

from testbed.schemas import IfName, IPv4, Name, NodeBase, Port, Prefix, Strict
from testbed.wire.constants import CORECAST_PORT, LISP_CONTROL_PORT

ENCAP_OVERHEAD = 36
"""Outer IPv4 (20) + UDP (8) + LISP (8) bytes (RFC 9300 section 5.1)."""
MIN_OUTER_MTU = 576
"""The datagram size every IPv4 host must accept (RFC 791): the smallest outer MTU we take."""
TUN_MTU = 1464
"""Default TUN MTU: 1500 - 36 bytes of encapsulation (the kernel sends Frag-Needed for larger DF packets)."""


class CoreCastService(Strict):
    """The ITR's CoreCast service address (source AS only): where the source S sends DATA and REFs."""

    addr: IPv4
    port: Port = CORECAST_PORT
    allowed_sources: list[Prefix] = Field(default_factory=list, max_length=1024)
    """Source EID prefixes whose messages the ITR accepts (from its own LAN)."""
    batch_delay_s: float | None = Field(0.005, ge=0, le=1.0)
    """Mode corecast-batch: the longest a REF with flag B waits in its ETR's REF-LIST (s; default chosen by
    measurement, docs/benchmarks.md); None sends every REF alone."""


class XtrConfig(NodeBase):
    """Every key of the xTR config; the defaults are what the xTR uses when a key is absent."""

    name: Name = "xtr"
    as_number: int | None = Field(None, alias="as", ge=0, le=65535)
    """The AS this xTR serves (informational: logs and status)."""
    rloc: IPv4
    map_server: IPv4
    map_resolver: IPv4
    key: str = Field(min_length=1, max_length=1024)
    """The site's Map-Register key (used as its UTF-8 bytes)."""
    alg_id: int = Field(2, ge=1, le=2)
    tun: IfName
    eid_block: Prefix
    """The whole EID space: routed into the TUN (the AS's own prefix stays on the LAN)."""
    eid_prefixes: list[Prefix] = Field(min_length=1, max_length=64)
    tun_routes: list[Prefix] = Field(default_factory=list, max_length=1024)
    lan_if: IfName | None = None
    core_if: IfName | None = None
    control_port: Port = LISP_CONTROL_PORT
    corecast: bool = False
    """CoreCast-capable ETR (advertised in the Locator record)."""
    corecast_defence: bool = True
    """The CoreCast security checks of the ETR and the ITR's service (see docs/security.md)."""
    corecast_max_chunk: int | None = Field(None, ge=1, le=0xFFFF - 28)
    """Largest chunk (bytes) the CoreCast ETR caches (None: what the ITR sends, outer_mtu - 64)."""
    corecast_quarantine: int = Field(64, ge=1, le=65536)
    """Chunks the CoreCast ETR keeps from ITRs not yet vouched for by the mapping system."""
    corecast_service: CoreCastService | None = None
    register_interval_s: float = Field(60.0, gt=0, le=86400)
    status_interval_s: float = Field(1.0, gt=0, le=3600)
    """Seconds between two writes of ``status_file`` (also written at exit); the testbed lengthens it at
    scale (testbed.net.lisp.status_interval: 1,000 xTRs writing into one directory every second kept
    most of them blocked on its lock)."""
    nice: int = Field(0, ge=-20, le=19)
    """The xTR process's nice value (setpriority at start); the testbed gives the source AS's ITR
    ``ITR_NICE`` at scale (testbed.net.lisp.ITR_NICE), other xTRs 0."""
    request_timeout_s: float = Field(1.0, gt=0, le=60)
    request_tries: int = Field(3, ge=1, le=100)
    queue_limit: int = Field(64, ge=1, le=100_000)
    """Packets queued per EID while its mapping is resolved."""
    outer_mtu: int = Field(1500, ge=MIN_OUTER_MTU, le=65535)
    tun_mtu: int = Field(TUN_MTU, ge=68, le=65535 - ENCAP_OVERHEAD)
    lispmc: bool = True
    """Signal-free LISP multicast (RFC 8378, docs/lispmc.md) on the LAN (needs lan_if; idle without SSM traffic)."""
    lispmc_refresh_s: float = Field(0.5, gt=0, le=60)
    """How often the ITR re-resolves an (S,G) it is sending (s)."""
    lispmc_register_s: float = Field(10.0, gt=0, le=3600)
    """How often the ETR re-registers the (S,G) it has receivers for (s)."""
    io_batch: int = Field(64, ge=0, le=1024)
    """Datagrams per recvmmsg/sendmmsg on the data, service and raw sockets (testbed/net/mmsg.py); 0: the plain
    loop, one system call per datagram (the previous implementation, kept for comparison and as a fallback)."""
    lan_send: bool = False
    """LAN fast path (with io_batch > 0): the ETR's packets go out on lan_if through a packet socket, forwarded by
    the xTR (testbed/net/lanpath.py), instead of one TUN write each. Off by default: measured no faster here and
    more CPU per packet in the ETR (docs/benchmarks.md, issue 16 item 3)."""

    @model_validator(mode="after")
    def _consistent(self) -> "XtrConfig":
        if self.tun_mtu + ENCAP_OVERHEAD > self.outer_mtu:
            raise ValueError(f"tun_mtu {self.tun_mtu} + {ENCAP_OVERHEAD} bytes of encapsulation exceed "
                             f"outer_mtu {self.outer_mtu}")
        if self.corecast_service is not None and self.lan_if is None:
            raise ValueError("corecast_service needs lan_if (the LAN the service address is added to)")
        if self.lan_send and self.lan_if is None:
            raise ValueError("lan_send needs lan_if (the LAN its packet socket sends on)")
        if self.lan_send and self.io_batch == 0:
            raise ValueError("lan_send needs io_batch > 0 (it sends with sendmmsg)")
        return self

    def as_cfg(self) -> dict:
        """The validated config as the dict the xTR reads (defaults filled in, ``as`` by its alias)."""
        return self.model_dump(by_alias=True)
