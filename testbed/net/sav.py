"""Source address validation at every border (BCP 38 / BCP 84 strict uRPF), with counted drops.

The CoreCast ETR vouches for an ITR by the packet's *outer source RLOC*
(docs/security.md). A host that can forge that address gets past the vouching;
what stops it on the real Internet is ingress filtering by the networks it is
attached to (BCP 38, RFC 2827; strict unicast RPF, RFC 3704 / BCP 84). This
module installs exactly that in the testbed's routers, so the ``attack``
experiment can measure what each layer of the defence buys:

* every border router (xTR ``x<i>``) and every core router (``core``, transit
  routers) drops a packet whose source address would not be routed back out of
  the interface it arrived on: nftables ``fib saddr . iif oif missing``, in a
  table of its own (``inet cc_sav``) in the router's namespace;
* each drop is counted (a named counter ``sav`` per router, read by
  :func:`read_drops`), never silent.

The topologies are trees (a star or a two-level transit hierarchy routed by
OSPF), so every legitimate packet arrives on the interface its source is routed
through: legitimate traffic is unaffected (the namespace tests and the attack
experiment's legitimate stream check it).

Installed and read with one short ``nft`` per router through ``node.popen``
(:mod:`testbed.net.nft`), each with a deadline.
"""

from __future__ import annotations

from typing import Any, Iterable

from testbed.net import nft
from testbed.net.nft import NftError

TABLE = "cc_sav"
"""The nftables table (family inet) holding the filter in each router."""

COUNTER = "sav"
"""The named counter of dropped packets in each router."""

RULESET = f"""table inet {TABLE} {{
  counter {COUNTER} {{ }}
  chain prerouting {{
    type filter hook prerouting priority -150; policy accept;
    iifname "lo" accept
    fib saddr . iif oif missing counter name "{COUNTER}" drop
  }}
}}
"""
"""The nft script installed in each router: strict uRPF on every interface but loopback."""


SavError = NftError
"""The filter could not be installed or read in a router (one line)."""


def routers(plan: Any) -> list[str]:
    """Names of every router of ``plan`` (an :class:`testbed.addressing.AddressPlan`): xTRs, core, transit."""
    names = [a.xtr for a in plan.all_ases] + [plan.core]
    names += [t.name for t in getattr(plan, "transit", []) or []]
    return names


def install(tb: Any, names: Iterable[str]) -> None:
    """Install the filter in each router ``tb.node(name)``; SavError naming the router on failure."""
    nft.load(tb, names, RULESET, "source address validation")


def parse_counter(text: str) -> tuple[int, int]:
    """``nft -j list counter inet cc_sav sav`` output as (packets, bytes); SavError if unreadable."""
    return nft.parse_counter(text, COUNTER)


def read_drops(tb: Any, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """{router: (packets, bytes) dropped so far} for each router in ``names``; SavError on failure."""
    return {name: nft.read_counter(tb, name, TABLE, COUNTER, "source address validation drops")
            for name in names}
