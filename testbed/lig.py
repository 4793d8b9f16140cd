"""``lig``: ask the mapping system for an EID and print the answer like the classic lig tool.

Sends a Map-Request the way an ITR does, inside an Encapsulated Control
Message to the Map-Resolver (UDP 4342). The UDP socket is bound to ``source``
(or the wildcard address) on an ephemeral port; that port is the ECM's inner
UDP source port and the inner source address / ITR-RLOC is the local address
that routes to the resolver, so the Map-Reply comes back to this socket.
Output (one block per reply)::

    Send map-request to 10.255.0.1:4342 for 10.1.0.10 ...
    Received map-reply from 10.255.0.1:4342 with rtt 0.61 ms

    Mapping entry for EID 10.1.0.10:
    10.1.0.0/16, via map-reply, record ttl: 1440, not auth, CoreCast-capable: yes
      Locator          State  Priority/Weight  CoreCast
      192.0.2.1        up     1/100            yes

With ``--probe RLOC`` it sends an RLOC-probe instead (RFC 9301 section 7.1):
a plain Map-Request with the P bit straight to ``RLOC`` port 4342, whose EID
record is the EID if given, else ``mask-len 0, AFI 0``; the ETR answers with
a Map-Reply carrying the P bit and its locator set, and the round trip is
printed in milliseconds.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import select
import socket
import sys
import time

from testbed.lisp.prefixes import parse_prefix
from testbed.lisp.mapcache import MapEntry
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.errors import DecodeError
from testbed.wire.lispctrl import Ecm, EidRecord, MapReply, MapRequest, decode_control, is_ipv4

ACTION_NAMES = {0: "no-action", 1: "natively-forward", 2: "send-map-request", 3: "drop"}


def _local_address(resolver: str) -> str:
    """The local address the kernel would use to reach ``resolver`` (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((resolver, LISP_CONTROL_PORT))
        return probe.getsockname()[0]
    finally:
        probe.close()


def format_record(eid: str, rec: EidRecord) -> list[str]:
    """Return the lines describing one EID-record of a Map-Reply."""
    auth = "auth" if rec.authoritative else "not auth"
    lines = [f"Mapping entry for EID {eid}:"]
    if not rec.locators:
        lines.append(f"{rec.prefix}, via map-reply, record ttl: {rec.ttl}, {auth}")
        lines.append(f"  Negative cache entry, action: {ACTION_NAMES.get(rec.action, str(rec.action))}")
        return lines
    capable = "yes" if any(l.corecast and l.reachable and is_ipv4(l.rloc) for l in rec.locators) else "no"
    if is_ipv4(rec.prefix.partition("/")[0]):
        net, plen = parse_prefix(rec.prefix)
        entry = MapEntry(net, plen, [(l.rloc, l.priority, l.weight, l.corecast) for l in rec.locators
                                     if l.reachable and is_ipv4(l.rloc)])
        capable = "yes" if entry.corecast else "no"
    lines.append(f"{rec.prefix}, via map-reply, record ttl: {rec.ttl}, {auth}, CoreCast-capable: {capable}")
    lines.append(f"  {'Locator':<16} {'State':<6} {'Priority/Weight':<16} CoreCast")
    for loc in rec.locators:
        state = "up" if loc.reachable else "down"
        lines.append(f"  {loc.rloc:<16} {state:<6} {f'{loc.priority}/{loc.weight}':<16} "
                     f"{'yes' if loc.corecast else 'no'}")
    return lines


def _wait_reply(sock: socket.socket, nonce: int, deadline: float,
                probe: bool = False) -> tuple[MapReply, tuple[str, int]] | None:
    """Receive until a Map-Reply with ``nonce`` (and the P bit if ``probe``) arrives or ``deadline``
    (perf_counter) passes."""
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        try:
            data, peer = sock.recvfrom(65535)
            msg = decode_control(data)
        except (OSError, DecodeError):
            continue
        if isinstance(msg, MapReply) and msg.nonce == nonce and (msg.probe or not probe):
            return msg, peer


def _bad(message: str) -> int:
    print(f"lig: {message}", file=sys.stderr)
    return 2


def lig_command(eid: str | None, resolver: str | None, source: str | None = None, timeout: float = 2.0, count: int = 1,
                probe: str | None = None) -> int:
    """Send ``count`` Map-Requests for ``eid`` to ``resolver`` (or RLOC-probes to ``probe``); print the replies.

    Returns 0 if a reply arrived, 1 if every request timed out, 2 on bad arguments.
    """
    if eid is None and probe is None:
        return _bad("give an EID, or --probe RLOC")
    try:
        eid = None if eid is None else str(ipaddress.IPv4Address(eid))
    except ValueError:
        return _bad(f"EID '{eid}' is not an IPv4 address")
    target = probe if probe is not None else resolver
    if target is None:
        return _bad("give --resolver ADDR (or --probe RLOC)")
    try:
        resolver = str(ipaddress.IPv4Address(target))
        source = str(ipaddress.IPv4Address(source)) if source else None
    except ValueError as exc:
        return _bad(f"bad address: {exc}")
    if not timeout > 0 or not isinstance(count, int) or count < 1:
        return _bad("timeout must be > 0 and count >= 1")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        try:
            sock.bind((source or "0.0.0.0", 0))
            itr = source or _local_address(resolver)
        except OSError as exc:
            return _bad(f"cannot use source {source or '0.0.0.0'}: {exc.strerror}")
        port = sock.getsockname()[1]
        rng = random.SystemRandom()
        got = 0
        for i in range(count):
            nonce = rng.getrandbits(64)
            if probe is not None:
                ecm = MapRequest(nonce, [f"{eid}/32" if eid else "/0"], [itr], probe=True).encode()
                print(f"Send RLOC-probe to {resolver}:{LISP_CONTROL_PORT} for {eid or 'any EID'} ...")
            else:
                req = MapRequest(nonce, [f"{eid}/32"], [itr])
                ecm = Ecm(itr, eid, port, LISP_CONTROL_PORT, req.encode()).encode()
                print(f"Send map-request to {resolver}:{LISP_CONTROL_PORT} for {eid} ...")
            start = time.perf_counter()
            try:
                sock.sendto(ecm, (resolver, LISP_CONTROL_PORT))
            except OSError as exc:
                print(f"*** cannot send to {resolver}: {exc.strerror} ***")
                continue
            answer = _wait_reply(sock, nonce, start + timeout, probe is not None)
            if answer is None:
                print(f"*** No map-reply received within {timeout:g} s ***")
                continue
            reply, peer = answer
            rtt = (time.perf_counter() - start) * 1000.0
            got += 1
            kind = "map-reply (RLOC-probe)" if reply.probe else "map-reply"
            print(f"Received {kind} from {peer[0]}:{peer[1]} with rtt {rtt:.2f} ms")
            print()
            for rec in reply.records:
                print("\n".join(format_record(eid or rec.prefix, rec)))
            if i + 1 < count:
                print()
        return 0 if got else 1
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m testbed.lig [EID] (--resolver ADDR | --probe RLOC) [--source ADDR] [--timeout S] [--count N]``."""
    parser = argparse.ArgumentParser(prog="lig", description="query the LISP mapping system for an EID")
    parser.add_argument("eid", nargs="?")
    parser.add_argument("--resolver", default=None)
    parser.add_argument("--probe", default=None, metavar="RLOC", help="send an RLOC-probe to RLOC instead")
    parser.add_argument("--source")
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args(argv)
    return lig_command(args.eid, args.resolver, args.source, args.timeout, args.count, args.probe)


if __name__ == "__main__":
    sys.exit(main())
