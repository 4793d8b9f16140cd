"""nftables inside routers' namespaces: load a script, read one named counter (one short ``nft`` per router).

Shared by :mod:`testbed.net.sav` (source address validation) and :mod:`testbed.net.loss`
(random loss). Each ``nft`` runs through ``node.popen`` with a deadline
(:func:`testbed.net.nodecmd.run_in_node`); errors are one line naming the router.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from testbed.net.nodecmd import NodeCommandError, run_in_node

NFT_TIMEOUT = 10.0
"""Deadline (s) of one ``nft`` command in one router."""


class NftError(RuntimeError):
    """An nft script could not be loaded, or a counter read, in a router (one line)."""


def load(tb: Any, names: Iterable[str], script: str, what: str) -> None:
    """Load ``script`` (``nft -f -``) in each router ``tb.node(name)``; NftError '<what> in <router>: ...'."""
    for name in names:
        try:
            res = run_in_node(tb.node(name), ["nft", "-f", "-"], timeout=NFT_TIMEOUT, input=script)
        except NodeCommandError as exc:
            raise NftError(f"{what} in {name}: {exc}") from None
        if res.returncode:
            raise NftError(f"{what} in {name}: nft: {res.stderr.strip()[:160]}")


def parse_counter(text: str, counter: str) -> tuple[int, int]:
    """``nft -j list counter ...`` output as (packets, bytes) of the counter named ``counter``; NftError if absent."""
    try:
        for item in json.loads(text)["nftables"]:
            found = item.get("counter") if isinstance(item, dict) else None
            if found and found.get("name") == counter:
                return int(found["packets"]), int(found["bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise NftError(f"unreadable nft counter: {text.strip()[:120]!r}") from exc
    raise NftError(f"no counter '{counter}' in nft output: {text.strip()[:120]!r}")


def read_counter(tb: Any, name: str, table: str, counter: str, what: str,
                 missing_ok: bool = False) -> tuple[int, int] | None:
    """(packets, bytes) of ``inet table counter`` in router ``name``; None if absent and ``missing_ok``; NftError."""
    try:
        res = run_in_node(tb.node(name), ["nft", "-j", "list", "counter", "inet", table, counter],
                          timeout=NFT_TIMEOUT)
    except NodeCommandError as exc:
        raise NftError(f"reading {what} in {name}: {exc}") from None
    if res.returncode:
        if missing_ok:
            return None
        raise NftError(f"reading {what} in {name}: nft: {res.stderr.strip()[:160]}")
    return parse_counter(res.stdout, counter)
