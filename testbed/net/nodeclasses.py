"""Mininet node classes that configure themselves in ``config()`` and undo it in ``terminate()``."""

from __future__ import annotations

from mininet.node import Host, Node


class LinuxRouter(Node):
    """A node that forwards IPv4 (border routers, the core).

    Params: ``routes``, a list of ``(prefix, via)`` static routes added after the
    interfaces are up. Reverse-path filtering is off, since LISP and CoreCast
    packets written into a TUN device carry sources routed elsewhere.
    """

    def config(self, routes: list[tuple[str, str]] | None = None, **params):  # type: ignore[override]
        """Enable forwarding and add the static routes."""
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        self.cmd("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0")
        for prefix, via in routes or []:
            self.cmd(f"ip route replace {prefix} via {via}")
        return result

    def terminate(self) -> None:
        """Stop forwarding, then tear the node down."""
        self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()


class EidHost(Host):
    """An end host in an AS: default route to its border router.

    Params: ``gateway`` (the border router's LAN address) and optional
    ``local_block``: a prefix the kernel accepts as local (``ip route add local
    ... dev lo``), so one receiver process can serve thousands of client EIDs.
    """

    def config(self, gateway: str | None = None, local_block: str | None = None, **params):  # type: ignore[override]
        """Add the default route and the local client block."""
        result = super().config(**params)
        if gateway:
            self.cmd(f"ip route replace default via {gateway}")
        if local_block:
            self.cmd(f"ip route replace local {local_block} dev lo")
        self.cmd("sysctl -qw net.core.rmem_max=33554432 net.core.wmem_max=33554432")
        return result
