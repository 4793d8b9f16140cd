"""Every inter-domain link measured: nftables counters per link and direction, captures to cross-check.

An inter-domain link joins a border router to the core (and, with a transit
core, a transit router to the root router). On each one we count, per direction, what DESIGN
section 4 calls ``core_bytes`` on the source uplink: the **IPv4 total lengths**
of LISP data packets (UDP 4341, either port, as :func:`testbed.decode.classify`
counts them) and, apart, of LISP control (UDP 4342). Interface counters cannot
separate the two (they count Ethernet frames of all traffic), so the counters are
nftables named counters in the lower end's namespace (one table,
``ip corecast_links``): a ``postrouting`` chain matches ``oifname`` (direction
``up``: from the border router towards the core) and a ``prerouting`` chain
matches ``iifname`` (direction ``down``). At these hooks the kernel's packet
length is the IP total length, so the counters equal a capture's sum to the
byte (checked with ``--keep-pcap``: :class:`LinkCaptures`). Non-first IP
fragments carry no UDP header and are not counted (as in the capture count).
A mode whose data is not LISP (``ipmc``: native multicast) adds its own match,
counted as data (:attr:`testbed.modes.Mode.link_data`, a :class:`testbed.datamatch.DataMatch`,
kept in ``tb.link_data`` once the mode started; :meth:`LinkCounters.count_as_data`), and
the captures filter and count the same packets (its BPF rendering, and
:func:`testbed.decode.count_capture` with the match), so with ``--keep-pcap`` every
mode's counters are cross-checked on every link.

One short ``nft`` command per node installs the rules and one reads them, each
through ``node.popen`` with a deadline, all nodes at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterable

from testbed.datamatch import DataMatch, capture_filter
from testbed.modemodels import DOWN, UP, CoreShape, LinkKey
from testbed.net.nodecmd import kill_group
from testbed.wire.constants import LISP_CONTROL_PORT, LISP_DATA_PORT

TABLE = "corecast_links"
"""The nftables table (family ip) that holds the counters in each measured node."""

NFT_TIMEOUT = 15.0
"""Deadline (s) of one batch of ``nft`` commands (one per node)."""

BATCH = 64
"""Nodes whose ``nft`` runs at the same time (a thousand ASes are read in batches)."""


class LinkError(RuntimeError):
    """Counters could not be installed or read (one line)."""


@dataclass(frozen=True)
class InterdomainLink:
    """One inter-domain link, measured at its lower end ``node`` on interface ``intf``."""

    name: str
    """``<node>-<peer>``, e.g. ``x1-core`` (the model's link name)."""
    node: str
    intf: str
    peer: str


def interdomain_links(plan: Any) -> list[InterdomainLink]:
    """The inter-domain links of ``plan``, source AS's first: each border router's link to its core router,
    then (tree core) each transit router's link to the root."""
    out = [InterdomainLink(f"{a.xtr}-{a.upstream}", a.xtr, a.core_if, a.upstream) for a in plan.all_ases]
    out += [InterdomainLink(f"{t.name}-{plan.core}", t.name, t.root_if, plan.core)
            for t in getattr(plan, "transit", [])]
    return out


def core_shape(plan: Any) -> CoreShape:
    """The model's view of ``plan``'s inter-domain links: the path from the source AS to each client AS.

    Star: the source uplink up, the client AS's link down. Tree: the source AS hangs off the
    root, so a client AS behind transit router t also takes ``t-core`` down.
    """
    links = interdomain_links(plan)
    src = links[0].name
    paths = []
    for a in plan.client_ases:
        hops = [(src, UP)]
        if a.upstream != plan.core:
            hops.append((f"{a.upstream}-{plan.core}", DOWN))
        hops.append((f"{a.xtr}-{a.upstream}", DOWN))
        paths.append(tuple(hops))
    return CoreShape(links=tuple(link.name for link in links), paths=tuple(paths))


@dataclass
class LinkCount:
    """What crossed one (link, direction): LISP data and LISP control, packets and IP bytes."""

    bytes: int = 0
    packets: int = 0
    control_bytes: int = 0
    control_packets: int = 0

    def __sub__(self, other: "LinkCount") -> "LinkCount":
        return LinkCount(self.bytes - other.bytes, self.packets - other.packets,
                         self.control_bytes - other.control_bytes, self.control_packets - other.control_packets)


def _counter(i: int, direction: str, kind: str) -> str:
    return f"l{i}_{direction}_{kind}"


def data_rules(intfs: list[str], match: str) -> list[tuple[str, str]]:
    """(chain, rule) pairs that count packets matching ``match`` (an nft expression) as data on ``intfs``."""
    return [(chain, f'{m} "{intf}" {match} counter name "{_counter(i, d, "data")}" accept')
            for chain, m, d in (("up", "oifname", UP), ("down", "iifname", DOWN)) for i, intf in enumerate(intfs)]


def ruleset(intfs: list[str], data_matches: Iterable[str] = ()) -> str:
    """The nft script for one node measuring ``intfs`` (counter names ``l<i>_<up|down>_<data|ctl>``).

    ``data_matches``: more nft expressions counted as data (a mode's own data, e.g. native
    multicast: :attr:`testbed.modes.Mode.link_data_match`).
    """
    extra = [rule for m in data_matches for rule in data_rules(intfs, m)]
    lines = [f"table ip {TABLE} {{"]
    for i in range(len(intfs)):
        for d in (UP, DOWN):
            for kind in ("data", "ctl"):
                lines.append(f"  counter {_counter(i, d, kind)} {{ }}")
    for chain, hook, prio, match, d in (("up", "postrouting", 300, "oifname", UP),
                                        ("down", "prerouting", -300, "iifname", DOWN)):
        lines.append(f"  chain {chain} {{ type filter hook {hook} priority {prio}; policy accept;")
        for i, intf in enumerate(intfs):
            for port, kind in ((LISP_DATA_PORT, "data"), (LISP_CONTROL_PORT, "ctl")):
                for field in ("sport", "dport"):
                    lines.append(f'    {match} "{intf}" udp {field} {port} counter name "{_counter(i, d, kind)}" accept')
        lines += [f"    {rule}" for c, rule in extra if c == chain]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def parse_counters(text: str) -> dict[str, tuple[int, int]]:
    """``nft -j list counters table ...`` output as {counter name: (packets, bytes)}; LinkError if unreadable."""
    try:
        items = json.loads(text)["nftables"]
        return {c["counter"]["name"]: (int(c["counter"]["packets"]), int(c["counter"]["bytes"]))
                for c in items if "counter" in c}
    except (ValueError, KeyError, TypeError) as exc:
        raise LinkError(f"unreadable nft counters: {text.strip()[:120]!r}") from exc


def _start(node: Any, argv: list[str], stdin: bool = False) -> subprocess.Popen:
    return node.popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, deadline: float, what: str, input: str | None = None) -> str:
    try:
        out, err = proc.communicate(input=input, timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise LinkError(f"{what} did not finish within {NFT_TIMEOUT:g} s") from None
    except BaseException:
        kill_group(proc)
        raise
    if proc.returncode:
        lines = (err or out or "").strip().splitlines()
        raise LinkError(f"{what} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return out


class LinkCounters:
    """nftables counters on every inter-domain link of a running testbed (``tb.node(name)`` gives nodes)."""

    def __init__(self, tb: Any, links: Iterable[InterdomainLink]) -> None:
        """Data matches beyond UDP 4341 come from ``tb.link_data`` (started modes' DataMatch, :meth:`count_as_data`)."""
        self.tb = tb
        self.links = list(links)
        self.data_matches: list[str] = [m.nft() for m in getattr(tb, "link_data", ())]
        self.by_node: dict[str, list[InterdomainLink]] = {}
        for link in self.links:
            self.by_node.setdefault(link.node, []).append(link)
        self.installed = False

    def _batches(self) -> list[list[str]]:
        names = list(self.by_node)
        return [names[i:i + BATCH] for i in range(0, len(names), BATCH)]

    def install(self) -> None:
        """Load the counters into every measured node (one ``nft -f -`` each, :data:`BATCH` nodes at a time)."""
        errors = []
        for batch in self._batches():
            deadline = time.monotonic() + NFT_TIMEOUT
            procs = [(name, _start(self.tb.node(name), ["nft", "-f", "-"], stdin=True),
                      ruleset([link.intf for link in self.by_node[name]], self.data_matches)) for name in batch]
            for name, proc, script in procs:
                try:
                    _finish(proc, deadline, f"nft in {name}", input=script)
                except LinkError as exc:
                    errors.append(str(exc))
            if errors:
                raise LinkError(errors[0])
        self.installed = True

    def count_as_data(self, match: str) -> None:
        """Count packets matching the nft expression ``match`` as data too (from now on, if installed)."""
        if match in self.data_matches:
            return
        self.data_matches.append(match)
        if not self.installed:
            return
        for batch in self._batches():
            deadline = time.monotonic() + NFT_TIMEOUT
            procs = [(name, _start(self.tb.node(name), ["nft", "-f", "-"], stdin=True),
                      "".join(f"add rule ip {TABLE} {chain} {rule}\n"
                              for chain, rule in data_rules([lk.intf for lk in self.by_node[name]], match)))
                     for name in batch]
            for name, proc, script in procs:
                _finish(proc, deadline, f"nft in {name}", input=script)

    def read(self) -> dict[LinkKey, LinkCount]:
        """The counters now, per (link name, direction) (cumulative since :meth:`install`)."""
        if not self.installed:
            self.install()
        out: dict[LinkKey, LinkCount] = {}
        for batch in self._batches():
            deadline = time.monotonic() + NFT_TIMEOUT
            procs = [(name, _start(self.tb.node(name), ["nft", "-j", "list", "counters", "table", "ip", TABLE]))
                     for name in batch]
            for name, proc in procs:
                self._collect(name, _finish(proc, deadline, f"nft in {name}"), out)
        return out

    def _collect(self, name: str, text: str, out: dict[LinkKey, LinkCount]) -> None:
        """Add node ``name``'s counters (``nft -j`` output) to ``out``; LinkError if one is missing."""
        counters = parse_counters(text)
        for i, link in enumerate(self.by_node[name]):
            for d in (UP, DOWN):
                try:
                    dp, db = counters[_counter(i, d, "data")]
                    cp, cb = counters[_counter(i, d, "ctl")]
                except KeyError:
                    raise LinkError(f"{name}: counter of {link.intf} {d} missing") from None
                out[(link.name, d)] = LinkCount(db, dp, cb, cp)


def delta(before: dict[LinkKey, LinkCount], after: dict[LinkKey, LinkCount]) -> dict[LinkKey, LinkCount]:
    """What crossed each (link, direction) between two readings."""
    return {key: after[key] - before.get(key, LinkCount()) for key in after}


class LinkCaptures:
    """tcpdump on both directions of every inter-domain link (``--keep-pcap``), to cross-check the counters."""

    def __init__(self, tb: Any, links: Iterable[InterdomainLink], pcap_dir: str, tag: str, snaplen: int = 0,
                 label: dict[str, Any] | None = None, matches: Iterable[DataMatch] | None = None) -> None:
        """``label`` (``run``, ``mode`` and any more key=value pairs) makes each capture a pcapng naming them.

        ``matches``: the modes' own data besides LISP (default ``tb.link_data``, what the counters count too).
        """
        from testbed.net.capture import Capture, capture_comment
        self.matches = tuple(getattr(tb, "link_data", ()) if matches is None else matches)
        self.caps: dict[LinkKey, Any] = {}
        for link in links:
            for d, q in ((UP, "out"), (DOWN, "in")):
                path = os.path.join(pcap_dir, f"{tag}-{link.name}-{d}.pcap")
                comment = None
                if label is not None:
                    more = {k: v for k, v in label.items() if k not in ("run", "mode")}
                    comment = capture_comment(label["run"], label["mode"], link.node, link.intf, link=link.name,
                                              direction=d, **more)
                self.caps[(link.name, d)] = Capture(tb.node(link.node), link.intf, path,
                                                    bpf=capture_filter(self.matches),
                                                    direction=q, snaplen=snaplen, comment=comment)

    def start(self) -> None:
        """Start every capture (each waits until tcpdump listens); stop them all on a failure."""
        try:
            for cap in self.caps.values():
                cap.start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every capture (tcpdump flushes)."""
        for cap in self.caps.values():
            cap.stop()

    def counts(self) -> dict[LinkKey, LinkCount]:
        """What each capture saw, counted as the counters count (:func:`testbed.decode.count_capture`: LISP
        data plus the modes' own data, control apart)."""
        from testbed.decode import count_capture
        out = {}
        for key, cap in self.caps.items():
            t = count_capture(cap.path, self.matches)
            out[key] = LinkCount(t.data_bytes, t.data_packets, t.control_bytes, t.packets["lisp-control"])
        return out

    @property
    def dropped(self) -> int:
        """Packets the kernel dropped from any of the captures."""
        return sum(cap.dropped for cap in self.caps.values())
