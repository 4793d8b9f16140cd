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
    link_data_match: ClassVar[str] = ""
    """An nft expression the inter-domain links' counters count as data besides LISP data (UDP 4341);
    empty for the LISP modes (testbed.net.links.LinkCounters.count_as_data)."""

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
        be registered with the testbed so that teardown stops it.
        """

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
