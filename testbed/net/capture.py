"""Packet captures with tcpdump inside a Mininet node, and interface counters.

A capture is ready when tcpdump says it is listening (no fixed sleep); at stop
it is sent SIGINT so it flushes, and the kernel-drop count it reports is kept:
a measurement with drops is not trusted.

Captures keep whole packets by default (``snaplen=0``), so a kept capture can be
inspected, replayed and analysed (tshark's MPEG-TS analysis) as it was sent;
``snaplen=N`` (N >= :data:`MIN_SNAPLEN`) cuts each packet after N bytes, which
still counts exactly (testbed.decode counts by the IP header's total length).
With a ``comment`` the capture is turned into pcapng at stop (``editcap``),
carrying the comment (run, mode, node, interface) as its section comment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any


class CaptureError(RuntimeError):
    """tcpdump failed to start, or lost packets."""


@dataclass
class IfCounters:
    """Interface counters read with ``ip -s -j link``."""

    tx_bytes: int
    tx_packets: int
    rx_bytes: int
    rx_packets: int


def read_counters(node: Any, intf: str) -> IfCounters:
    """Counters of ``intf`` as seen inside ``node``'s namespace (``ip`` run through popen, 30 s deadline)."""
    from testbed.net.nodecmd import run_in_node
    out = run_in_node(node, ["ip", "-s", "-j", "link", "show", "dev", intf], timeout=30).stdout
    try:
        stats = json.loads(out)[0]["stats64"]
    except (ValueError, IndexError, KeyError) as exc:
        raise CaptureError(f"cannot read counters of {intf}: {out.strip()[:200]}") from exc
    return IfCounters(stats["tx"]["bytes"], stats["tx"]["packets"], stats["rx"]["bytes"], stats["rx"]["packets"])


MIN_SNAPLEN = 64
"""Shortest cut that still counts every type: Ethernet 14 + IPv4 20 + UDP 8 + LISP 8 + CoreCast 12 = 62 bytes."""


def check_snaplen(snaplen: int) -> int:
    """``snaplen`` if it is 0 (whole packets) or at least :data:`MIN_SNAPLEN`; ValueError otherwise."""
    if isinstance(snaplen, bool) or not isinstance(snaplen, int) or (snaplen != 0 and not
                                                                     MIN_SNAPLEN <= snaplen <= 262144):
        raise ValueError(f"snap length must be 0 (whole packets) or {MIN_SNAPLEN} to 262144 bytes, got {snaplen!r}")
    return snaplen


def capture_comment(run: str, mode: str, node: str, intf: str, **more: Any) -> str:
    """The pcapng section comment of a kept capture: ``corecast run=... mode=... node=... interface=... k=v``."""
    parts = [f"run={run}", f"mode={mode}", f"node={node}", f"interface={intf}"]
    parts += [f"{key}={value}" for key, value in more.items()]
    return "corecast " + " ".join(parts)


class Capture:
    """tcpdump writing one capture of one interface of one node.

    ``snaplen``: 0 keeps whole packets, N cuts after N bytes (see :func:`check_snaplen`).
    ``comment``: if given, :meth:`stop` turns the pcap into pcapng with this
    section comment and ``path`` then names the ``.pcapng`` file.
    """

    def __init__(self, node: Any, intf: str, path: str, bpf: str = "udp", direction: str = "out",
                 snaplen: int = 0, comment: str | None = None) -> None:
        self.node = node
        self.intf = intf
        self.path = path
        self.bpf = bpf
        self.direction = direction
        self.snaplen = check_snaplen(snaplen)
        self.comment = comment
        self.errpath = path + ".stderr"
        self.proc: subprocess.Popen | None = None
        self.captured = 0
        self.dropped = 0

    def start(self, timeout: float = 10.0) -> None:
        """Start tcpdump and wait until it is listening."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        cmd = ["tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-B", "32768", "-s", str(self.snaplen or 262144), "-i", self.intf,
               "-Q", self.direction, "-w", self.path, self.bpf]
        with open(self.errpath, "wb") as err:
            self.proc = self.node.popen(cmd, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            text = self._stderr()
            if "listening on" in text:
                return
            if self.proc.poll() is not None:
                raise CaptureError(f"tcpdump on {self.intf} exited: {text.strip()[-300:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise CaptureError(f"tcpdump on {self.intf} not listening after {timeout} s")
            time.sleep(delay)
            delay = min(2 * delay, 0.1)

    def _stderr(self) -> str:
        try:
            with open(self.errpath, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def settle(self, quiet: float = 0.3, limit: float = 5.0) -> None:
        """Wait until the pcap file has stopped growing for ``quiet`` seconds (at most ``limit``)."""
        deadline = time.monotonic() + limit
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            try:
                size = os.path.getsize(self.path)
            except OSError:
                size = 0
            now = time.monotonic()
            if size != last:
                last, since = size, now
            elif now - since >= quiet:
                return
            time.sleep(0.05)

    def stop(self) -> None:
        """Let the capture catch up, stop tcpdump (SIGINT so it flushes), read its captured/dropped counts."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.settle()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        text = self._stderr()
        m = re.search(r"(\d+) packets? captured", text)
        self.captured = int(m.group(1)) if m else 0
        m = re.search(r"(\d+) packets? dropped by kernel", text)
        self.dropped = int(m.group(1)) if m else 0
        self.proc = None
        if self.comment is not None and os.path.exists(self.path):
            self.path = to_pcapng(self.path, self.comment)


def to_pcapng(path: str, comment: str, timeout: float = 600.0) -> str:
    """Rewrite the pcap at ``path`` as pcapng with ``comment`` (editcap); return the new path (``.pcapng``).

    The pcap is removed once the pcapng is complete; CaptureError if editcap is
    missing or fails (the pcap is then kept as it was).
    """
    base = path[:-5] if path.endswith(".pcap") else path
    out = base + ".pcapng"
    tmp = out + ".part"
    try:
        proc = subprocess.run(["editcap", "-F", "pcapng", "--capture-comment", comment, path, tmp],
                              capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        raise CaptureError("editcap not found (Debian package wireshark-common, with tshark)") from exc
    except subprocess.TimeoutExpired as exc:
        raise CaptureError(f"editcap did not convert {path} within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CaptureError(f"editcap failed on {path}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    os.replace(tmp, out)
    if out != path:
        os.unlink(path)
    return out


def iter_ip_packets(path: str):
    """Yield (src, dst, protocol, sport, dport) of every IPv4 packet in a pcap/pcapng (ports 0 if not UDP/TCP).

    Every link layer of :mod:`testbed.capfile` is read (VLAN tags included); a frame
    without IPv4 yields protocol -1. Raise CaptureError for an unreadable file.
    """
    import socket
    import struct

    from testbed import capfile
    try:
        for frame in capfile.read_capture(path):
            off = capfile.ip_offset(frame.linktype, frame.data)
            ip = frame.data[off:] if off >= 0 else b""
            if len(ip) < 20 or ip[0] >> 4 != 4:
                yield ("0.0.0.0", "0.0.0.0", -1, 0, 0)  # not IPv4 (ARP, IPv6)
                continue
            ihl = (ip[0] & 0x0F) * 4
            proto = ip[9]
            sport = dport = 0
            if proto in (6, 17) and len(ip) >= ihl + 4:
                sport, dport = struct.unpack_from("!HH", ip, ihl)
            yield socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20]), proto, sport, dport
    except capfile.CaptureError as exc:
        raise CaptureError(str(exc)) from None
