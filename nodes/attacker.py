"""The attacker of ``corecast run attack``: ``python -m nodes.attacker --config FILE``.

Sends the datagrams of one attack (:func:`testbed.attack.build` of ``spec``) in
bursts of ``burst`` back-to-back datagrams (default 1), at most ``rate_pps``
bursts per second and within ``deadline_s``, then writes what it sent
to ``status_file`` and exits: ``{"packets", "bytes", "errors", "duration_s",
"warmup"}`` (bytes: IP total lengths before fragmentation). Spoofed sources use
a raw socket (IP_HDRINCL); the rest a UDP socket from the host's own address.

``warmup`` (optional ``{"dst", "port"}``): first one empty UDP datagram from the
host's own address to that place, then ``warmup_s`` seconds of waiting, so the
attacker's own ITR has resolved the destination before the attack (an empty
datagram gets no reply from a UDP service; it is not counted as attack traffic).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from testbed.attack import AttackError, build
from testbed.nodeutil import ConfigError, mark_ready, node_main, setup_logging, write_json_atomic
from testbed.schemas import parse
from testbed.schemas.attacker import AttackerSchema

IP_MTU_DISCOVER = 10   # <linux/in.h>
IP_PMTUDISC_DONT = 0


def load(cfg: dict[str, Any]) -> AttackerSchema:
    """Check the config (testbed/schemas/attacker.py); ConfigError with a one-line reason."""
    return parse(AttackerSchema, cfg)


def send_all(conf: AttackerSchema) -> dict[str, Any]:
    """Send the attack; return what was sent (stops at the deadline)."""
    try:
        datagrams = build(conf.spec)
    except AttackError as exc:
        raise ConfigError(str(exc)) from None
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT)  # let the kernel fragment
    for s in (raw, udp):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    out = {"packets": 0, "bytes": 0, "errors": 0, "duration_s": 0.0, "planned": len(datagrams),
           "warmup": False}
    t_end = time.monotonic() + conf.deadline_s
    try:
        if conf.warmup is not None:
            udp.sendto(b"", (conf.warmup.dst, conf.warmup.port))
            out["warmup"] = True
            time.sleep(conf.warmup_s)
        gap = 1.0 / conf.rate_pps
        burst = conf.burst
        t0 = time.monotonic()
        for i, d in enumerate(datagrams):
            now = time.monotonic()
            if now > t_end:
                break
            due = t0 + (i // burst) * gap
            if due > now:
                time.sleep(due - now)
            try:
                if d.raw:
                    raw.sendto(d.data, (d.dst, 0))
                else:
                    udp.sendto(d.data, (d.dst, d.port))
            except OSError:
                out["errors"] += 1
                continue
            out["packets"] += 1
            out["bytes"] += d.ip_bytes
        out["duration_s"] = round(time.monotonic() - t0, 4)
    finally:
        raw.close()
        udp.close()
    return out


def run(cfg: dict[str, Any]) -> int:
    """Send one attack and record it; 0 unless nothing could be sent."""
    conf = load(cfg)
    log = setup_logging(conf.name, conf.log_level)
    mark_ready(cfg)
    result = send_all(conf)
    if conf.status_file:
        write_json_atomic(conf.status_file, result)
    log.info("attack %s: sent %d of %d datagrams, %d bytes, %d errors in %.3f s", conf.spec.get("kind"),
             result["packets"], result["planned"], result["bytes"], result["errors"], result["duration_s"])
    return 0 if result["packets"] or not result["planned"] else 1


def main() -> None:
    """Entry point of ``python -m nodes.attacker`` (and of a child forked by testbed.net.launcher)."""
    node_main("attacker", run)


if __name__ == "__main__":
    main()
