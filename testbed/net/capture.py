"""Packet captures with tcpdump inside a Mininet node, and interface counters.

A capture is ready when tcpdump says it is listening (no fixed sleep); at stop
it is sent SIGINT so it flushes, and the kernel-drop count it reports is kept:
a measurement with drops is not trusted.
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
    """Counters of ``intf`` as seen inside ``node``'s namespace."""
    out = node.cmd(f"ip -s -j link show dev {intf}")
    try:
        stats = json.loads(out)[0]["stats64"]
    except (ValueError, IndexError, KeyError) as exc:
        raise CaptureError(f"cannot read counters of {intf}: {out.strip()[:200]}") from exc
    return IfCounters(stats["tx"]["bytes"], stats["tx"]["packets"], stats["rx"]["bytes"], stats["rx"]["packets"])


class Capture:
    """tcpdump writing one pcap of one interface of one node."""

    def __init__(self, node: Any, intf: str, path: str, bpf: str = "udp", direction: str = "out",
                 snaplen: int = 128) -> None:
        self.node = node
        self.intf = intf
        self.path = path
        self.bpf = bpf
        self.direction = direction
        self.snaplen = snaplen
        self.errpath = path + ".stderr"
        self.proc: subprocess.Popen | None = None
        self.captured = 0
        self.dropped = 0

    def start(self, timeout: float = 10.0) -> None:
        """Start tcpdump and wait until it is listening."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        cmd = ["tcpdump", "-n", "-U", "--immediate-mode", "-Z", "root", "-B", "32768", "-s", str(self.snaplen), "-i", self.intf,
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
