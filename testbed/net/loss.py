"""Random loss on the core links with nftables, in the core routers' namespaces (no netem on these machines).

Each core router (the star's router, or the tree's root and transit routers) gets
one table ``inet cc_loss`` whose forward chain drops a forwarded UDP datagram with
probability ``permille / 1000`` (``numgen random mod 1000 < N``), counted in the
named counter ``lost``. LISP control (UDP 4342: Map-Register, Map-Request,
Map-Reply, Map-Notify) is exempt, so the mapping system stays up; so are routing
protocols (OSPF, PIM and IGMP are not UDP). A datagram crossing h core routers is
dropped with probability 1 - (1 - p)^h (h = 1 between two ASes of a star core).

```python
install(tb, core_routers(plan), 10)     # 1 % loss in every core router
read_lost(tb, core_routers(plan))      # {"c0": 123}: datagrams dropped so far
install(tb, core_routers(plan), 0)     # no loss (the table is removed)
```
Errors: :class:`LossError` (one line naming the router) if nft fails.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from testbed.net.nodecmd import NodeCommandError, run_in_node

TABLE = "cc_loss"
COUNTER = "lost"
NFT_TIMEOUT = 10.0
"""Deadline (s) of one ``nft`` command in one router."""
MAX_PERMILLE = 1000


class LossError(RuntimeError):
    """The loss rule could not be installed or read in a router (one line)."""


def ruleset(permille: int) -> str:
    """The nft script that (re)sets the loss to ``permille`` / 1000 (0: the table is removed); ValueError if outside."""
    if isinstance(permille, bool) or not isinstance(permille, int) or not 0 <= permille <= MAX_PERMILLE:
        raise ValueError(f"loss must be a whole number of per mille within 0..{MAX_PERMILLE}, got {permille!r}")
    reset = f"add table inet {TABLE}\ndelete table inet {TABLE}\n"
    if permille == 0:
        return reset
    return reset + f"""table inet {TABLE} {{
  counter {COUNTER} {{ }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    udp sport 4342 accept
    udp dport 4342 accept
    meta l4proto udp numgen random mod 1000 < {permille} counter name "{COUNTER}" drop
  }}
}}
"""


def core_routers(plan: Any) -> list[str]:
    """Names of the core routers of ``plan``: the star's router, or the tree's root and transit routers."""
    return [plan.core] + [t.name for t in getattr(plan, "transit", []) or []]


def install(tb: Any, names: Iterable[str], permille: int) -> None:
    """Set the loss in each router ``tb.node(name)`` to ``permille`` / 1000; LossError naming the router on failure."""
    script = ruleset(permille)
    for name in names:
        try:
            res = run_in_node(tb.node(name), ["nft", "-f", "-"], timeout=NFT_TIMEOUT, input=script)
        except NodeCommandError as exc:
            raise LossError(f"loss rule in {name}: {exc}") from None
        if res.returncode:
            raise LossError(f"loss rule in {name}: nft: {res.stderr.strip()[:160]}")


def parse_counter(text: str) -> int:
    """Packets of the ``lost`` counter in ``nft -j list counter`` output; LossError if unreadable."""
    try:
        for item in json.loads(text)["nftables"]:
            counter = item.get("counter") if isinstance(item, dict) else None
            if counter and counter.get("name") == COUNTER:
                return int(counter["packets"])
    except (ValueError, KeyError, TypeError) as exc:
        raise LossError(f"unreadable nft counter: {text.strip()[:120]!r}") from exc
    raise LossError(f"no counter '{COUNTER}' in nft output: {text.strip()[:120]!r}")


def read_lost(tb: Any, names: Iterable[str]) -> dict[str, int]:
    """{router: datagrams dropped so far} (0 for a router without the table, i.e. at loss 0)."""
    out = {}
    for name in names:
        try:
            res = run_in_node(tb.node(name), ["nft", "-j", "list", "counter", "inet", TABLE, COUNTER],
                              timeout=NFT_TIMEOUT)
        except NodeCommandError as exc:
            raise LossError(f"reading the loss counter in {name}: {exc}") from None
        out[name] = parse_counter(res.stdout) if res.returncode == 0 else 0
    return out
