"""The :class:`Mode` base class: one delivery mode as a small class.

A mode says what the source sends (:attr:`Mode.source_mode`, the source node's
``mode``), what the routers run beyond the always-running xTRs and mapping system
(:meth:`Mode.start`), what the model says (:attr:`Mode.model`, a
:class:`testbed.modemodels.ModeModel`) and how its rows are labelled
(:meth:`Mode.row`), and whether it runs its own stream (:meth:`Mode.run_stream`,
the P2P overlay). The measurement code only calls these, so a new mode is a new
subclass registered in :data:`testbed.modes.MODES`, never a new branch there.
Modes are passed as classes, as Mininet passes node classes
(``Mininet(switch=OVSBridge)``), and instantiated once per network.
"""

from __future__ import annotations

from typing import Any, ClassVar

from testbed.datamatch import DataMatch
from testbed.modemodels import ModeModel


class Mode:
    """A delivery mode (subclass it; set the class attributes; override the hooks if needed)."""

    name: ClassVar[str] = ""
    """The value of ``--set modes=...`` and of the ``mode`` column."""
    description: ClassVar[str] = ""
    """One line for ``corecast list`` and the docs."""
    model: ClassVar[ModeModel]
    """What the model says: bytes and packets per chunk on every inter-domain link."""
    source_mode: ClassVar[str] = ""
    """What the source sends: the ``mode`` of the source node's config (:mod:`testbed.stream.sender`)."""
    link_data: ClassVar[DataMatch | None] = None
    """The mode's data when it is not LISP data (UDP 4341), e.g. native multicast (``ipmc``); None for the
    LISP modes. Links' nft counters, their captures and the capture count all derive their rule from it
    (:mod:`testbed.datamatch`), so captures cross-check the counters in every mode."""
    link_data_match: ClassVar[str] = ""
    """``link_data``'s nft expression (set from it; testbed.net.links.LinkCounters.count_as_data)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Derive ``link_data_match`` from ``link_data``; a bare nft string would escape the captures (TypeError)."""
        super().__init_subclass__(**kwargs)
        if "link_data_match" in vars(cls) and cls.link_data_match != (cls.link_data.nft() if cls.link_data else ""):
            raise TypeError(f"{cls.__name__}: set link_data (a testbed.datamatch.DataMatch), not link_data_match, "
                            "so that captures and the capture count match what the counters count")
        cls.link_data_match = cls.link_data.nft() if cls.link_data else ""

    def __init__(self, network: Any = None) -> None:
        self.network = network
        """The :class:`testbed.measure.Network` this mode runs on (None for model-only use)."""

    def source_config(self) -> dict[str, Any]:
        """Keys of the source node's config that this mode sets."""
        return {"mode": self.source_mode}

    def client_config(self) -> dict[str, Any]:
        """Keys of every client node's config that this mode sets (none by default)."""
        return {}

    def start(self) -> None:
        """Start what the routers need for this mode beyond the xTRs and mapping system (nothing by default).

        Called once per network, before the mode's first stream; anything started must
        be registered with the testbed so that teardown stops it. The default claims
        :attr:`link_data` (:meth:`claim_link_data`); an override must call it too.
        """
        self.claim_link_data()

    def claim_link_data(self) -> None:
        """Make the network's links count :attr:`link_data` as data: ``tb.link_data`` (read by the links'
        counters and captures, testbed.net.links) and counters already installed. Nothing without one."""
        net = self.network
        if self.link_data is None or net is None:
            return
        tb = net.tb
        claimed = list(getattr(tb, "link_data", ()))
        if self.link_data not in claimed:
            tb.link_data = [*claimed, self.link_data]
        if getattr(net, "link_counters", None) is not None:
            net.link_counters.count_as_data(self.link_data.nft())

    def run_stream(self, spec: Any, during: Any = None) -> dict[str, Any] | None:
        """Run one stream of ``spec`` this mode's own way and return its measured row, or None (the default)
        for the network's per-client stream (:meth:`testbed.measure.Network.stream`, which calls this first)."""
        return None

    def source_datagrams_per_chunk(self, k: int) -> int:
        """Datagrams the source sends per chunk for ``k`` clients (paces experiments)."""
        return self.model.source_as_packets(k)

    def row(self) -> dict[str, Any]:
        """The columns that label this mode's rows."""
        return {"mode": self.name}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
