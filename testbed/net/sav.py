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
(:func:`testbed.net.nodecmd.run_in_node`), each with a deadline.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from testbed.net.nodecmd import NodeCommandError, run_in_node

TABLE = "cc_sav"
"""The nftables table (family inet) holding the filter in each router."""

COUNTER = "sav"
"""The named counter of dropped packets in each router."""

NFT_TIMEOUT = 10.0
"""Deadline (s) of one ``nft`` command in one router."""

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


class SavError(RuntimeError):
    """The filter could not be installed or read in a router (one line)."""


def routers(plan: Any) -> list[str]:
    """Names of every router of ``plan`` (an :class:`testbed.addressing.AddressPlan`): xTRs, core, transit."""
    names = [a.xtr for a in plan.all_ases] + [plan.core]
    names += [t.name for t in getattr(plan, "transit", []) or []]
    return names


def install(tb: Any, names: Iterable[str]) -> None:
    """Install the filter in each router ``tb.node(name)``; SavError naming the router on failure."""
    for name in names:
        try:
            res = run_in_node(tb.node(name), ["nft", "-f", "-"], timeout=NFT_TIMEOUT, input=RULESET)
        except NodeCommandError as exc:
            raise SavError(f"source address validation in {name}: {exc}") from None
        if res.returncode:
            raise SavError(f"source address validation in {name}: nft: {res.stderr.strip()[:160]}")


def parse_counter(text: str) -> tuple[int, int]:
    """``nft -j list counter inet cc_sav sav`` output as (packets, bytes); SavError if unreadable."""
    try:
        for item in json.loads(text)["nftables"]:
            counter = item.get("counter") if isinstance(item, dict) else None
            if counter and counter.get("name") == COUNTER:
                return int(counter["packets"]), int(counter["bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SavError(f"unreadable nft counter: {text.strip()[:120]!r}") from exc
    raise SavError(f"no counter '{COUNTER}' in nft output: {text.strip()[:120]!r}")


def read_drops(tb: Any, names: Iterable[str]) -> dict[str, tuple[int, int]]:
    """{router: (packets, bytes) dropped so far} for each router in ``names``; SavError on failure."""
    out = {}
    for name in names:
        try:
            res = run_in_node(tb.node(name), ["nft", "-j", "list", "counter", "inet", TABLE, COUNTER],
                              timeout=NFT_TIMEOUT)
        except NodeCommandError as exc:
            raise SavError(f"reading source address validation drops in {name}: {exc}") from None
        if res.returncode:
            raise SavError(f"reading source address validation drops in {name}: nft: {res.stderr.strip()[:160]}")
        out[name] = parse_counter(res.stdout)
    return out
