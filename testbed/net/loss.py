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

from typing import Any, Iterable

from testbed.net import nft
from testbed.net.nft import NftError

TABLE = "cc_loss"
COUNTER = "lost"
MAX_PERMILLE = 1000


LossError = NftError
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
    nft.load(tb, names, ruleset(permille), "loss rule")


def parse_counter(text: str) -> int:
    """Packets of the ``lost`` counter in ``nft -j list counter`` output; LossError if unreadable."""
    return nft.parse_counter(text, COUNTER)[0]


def read_lost(tb: Any, names: Iterable[str]) -> dict[str, int]:
    """{router: datagrams dropped so far} (0 for a router without the table, i.e. at loss 0)."""
    out = {}
    for name in names:
        found = nft.read_counter(tb, name, TABLE, COUNTER, "the loss counter", missing_ok=True)
        out[name] = found[0] if found else 0
    return out
