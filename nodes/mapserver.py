"""The Map-Server/Map-Resolver: ``python -m nodes.mapserver --config FILE``.

A thin socket loop around :class:`testbed.lisp.mapserver.MapServer`: one UDP
socket bound to ``listen:port`` (default 4342), ``select`` with a timeout equal
to the time to the next timer (registration expiry, status write).

Config (JSON object)::

    {"name": "ms", "listen": "10.255.0.1", "port": 4342, "expiry_s": 180, "negative_ttl_min": 15,
     "sites": [{"name": "as1", "key": "secret", "algorithms": ["sha256", "sha1"],
                "prefixes": ["10.1.0.0/16"]}],
     "ready_file": ..., "status_file": ..., "table_file": ..., "log_level": "info"}

A site key is used as the UTF-8 bytes of the string. Times in the table are
wall-clock seconds (``time.time()``). SIGUSR1 logs the registration table and
writes ``table_file``; ``status_file`` (counters) is written every second and at
exit, ``table_file`` at exit. Every dropped message is logged with its reason,
at most :data:`LOG_BURST` lines a second (the rest are summarised), so a flood
of garbage cannot flood the log. Bad input never stops the loop.
"""

from __future__ import annotations

import ipaddress
import logging
import select
import signal
import socket
import time
from typing import Any

from testbed.lisp.mapserver import MapServer, Site
from testbed.nodeutil import ConfigError, StopFlag, mark_ready, node_main, require, setup_logging, write_json_atomic
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.lispctrl import ALG_SHA1_96, ALG_SHA256_128

ALGORITHMS = {"sha256": ALG_SHA256_128, "sha1": ALG_SHA1_96}
LOG_BURST = 20
"""Drop log lines allowed per second."""
BATCH = 256
STATUS_PERIOD = 1.0


def load(cfg: dict[str, Any]) -> tuple[list[Site], dict[str, Any]]:
    """Validate the config; return (sites, MapServer options). Raises ConfigError with a one-line reason."""
    listen = require(cfg, "listen", str)
    try:
        ipaddress.IPv4Address(listen)
    except ValueError:
        raise ConfigError(f"'listen' {listen!r} is not an IPv4 address") from None
    port = cfg.get("port", LISP_CONTROL_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"'port' {port!r} is not a UDP port")
    expiry = cfg.get("expiry_s", 180.0)
    neg = cfg.get("negative_ttl_min", 15)
    if not isinstance(expiry, (int, float)) or isinstance(expiry, bool) or expiry <= 0:
        raise ConfigError(f"'expiry_s' {expiry!r} must be a positive number")
    if not isinstance(neg, int) or isinstance(neg, bool) or not 0 <= neg < 2**32:
        raise ConfigError(f"'negative_ttl_min' {neg!r} must be a whole number of minutes")
    sites = []
    for i, raw in enumerate(require(cfg, "sites", list)):
        if not isinstance(raw, dict):
            raise ConfigError(f"sites[{i}] must be an object")
        name = require(raw, "name", str)
        key = require(raw, "key", str)
        algs = raw.get("algorithms", ["sha256", "sha1"])
        if not isinstance(algs, list) or not algs or any(a not in ALGORITHMS for a in algs):
            raise ConfigError(f"site {name}: 'algorithms' must be a non-empty list of {sorted(ALGORITHMS)}")
        prefixes = require(raw, "prefixes", list)
        for p in prefixes:
            try:
                ipaddress.IPv4Network(p, strict=True)
            except (ValueError, TypeError):
                raise ConfigError(f"site {name}: {p!r} is not an IPv4 prefix (host bits must be zero)") from None
        sites.append(Site(name, key.encode(), list(prefixes), frozenset(ALGORITHMS[a] for a in algs)))
    return sites, {"expiry": float(expiry), "negative_ttl": neg}


class DropLog:
    """Log dropped messages, at most ``burst`` lines per second, summarising the rest."""

    def __init__(self, log: logging.Logger, burst: int = LOG_BURST) -> None:
        self.log, self.burst = log, burst
        self.window = 0.0
        self.used = 0
        self.suppressed = 0

    def drop(self, now: float, src: str, sport: int, reason: str, detail: str) -> None:
        """Record one drop (logged unless this second's budget is spent)."""
        if now - self.window >= 1.0:
            self.flush(now)
        if self.used < self.burst:
            self.used += 1
            self.log.info("dropped message from %s:%d: %s%s", src, sport, reason, f" ({detail})" if detail else "")
        else:
            self.suppressed += 1

    def flush(self, now: float) -> None:
        """Start a new one-second window, reporting what the last one suppressed."""
        if self.suppressed:
            self.log.info("%d more dropped messages not logged (see status counters)", self.suppressed)
        self.window, self.used, self.suppressed = now, 0, 0


def write_table(cfg: dict[str, Any], ms: MapServer) -> None:
    """Write the registration table to ``table_file`` if configured."""
    path = cfg.get("table_file")
    if path:
        write_json_atomic(path, {"name": cfg.get("name", "mapserver"), "written_at": time.time(),
                                 "registrations": ms.table()})


def log_table(log: logging.Logger, ms: MapServer) -> None:
    """Log the registration table, a line per registered prefix."""
    rows = ms.table()
    log.info("registration table: %d prefixes", len(rows))
    now = time.time()
    for row in rows:
        locs = ", ".join(f"{r['rloc']} p{r['priority']} w{r['weight']}{' corecast' if r['corecast'] else ''}"
                         for r in row["rlocs"])
        log.info("  %-18s site %-10s -> %s (ttl %d min, expires in %.0f s, nonce %s)", row["prefix"],
                 row["site"], locs, row["ttl_min"], row["expires_at"] - now, row["last_nonce"])


def run(cfg: dict[str, Any]) -> int:
    """Serve until SIGTERM/SIGINT; return the exit status."""
    name = cfg.get("name", "mapserver")
    log = setup_logging(name, cfg.get("log_level", "info"))
    sites, opts = load(cfg)
    ms = MapServer(sites, **opts)
    port = cfg.get("port", LISP_CONTROL_PORT)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    try:
        sock.bind((cfg["listen"], port))
    except OSError as exc:
        raise ConfigError(f"cannot bind {cfg['listen']}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    stop = StopFlag()
    usr1 = []
    signal.signal(signal.SIGUSR1, lambda _s, _f: usr1.append(1))
    wake_r, wake_w = socket.socketpair()  # a signal makes select return at once
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    mark_ready(cfg, listen=cfg["listen"], port=sock.getsockname()[1])
    log.info("serving on %s:%d, %d sites, expiry %.0f s", cfg["listen"], sock.getsockname()[1], len(sites),
             opts["expiry"])
    drops = DropLog(log)
    send_errors = 0
    next_status = 0.0

    def status() -> dict[str, Any]:
        return {"name": name, "time": time.time(), "registrations": len(ms),
                "counters": dict(ms.counters, **({"send-error": send_errors} if send_errors else {}))}

    try:
        while not stop.is_set():
            now = time.time()
            if now >= next_status:
                if cfg.get("status_file"):
                    write_json_atomic(cfg["status_file"], status())
                next_status = now + STATUS_PERIOD
            if usr1:
                usr1.clear()
                log_table(log, ms)
                write_table(cfg, ms)
            if ms.next_deadline() <= now:
                ms.on_timer(now)
            timeout = max(0.0, min(next_status, ms.next_deadline()) - now)
            ready, _, _ = select.select([sock, wake_r], [], [], timeout)
            if wake_r in ready:
                try:
                    wake_r.recv(4096)
                except BlockingIOError:
                    pass
            if sock not in ready:
                continue
            for _ in range(BATCH):
                try:
                    buf, (src, sport) = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                    log.debug("recvfrom: %s", exc)
                    continue
                now = time.time()
                for payload, dst, dport in ms.on_message(buf, src, sport, now):
                    try:
                        sock.sendto(payload, (dst, dport))
                    except OSError as exc:
                        send_errors += 1
                        log.debug("sendto %s:%d: %s", dst, dport, exc)
                if ms.last_drop is not None:
                    drops.drop(now, src, sport, *ms.last_drop)
    finally:
        drops.flush(time.time())
        if cfg.get("status_file"):
            write_json_atomic(cfg["status_file"], status())
        write_table(cfg, ms)
        signal.set_wakeup_fd(-1)
        for fd_sock in (sock, wake_r, wake_w):
            fd_sock.close()
        log.info("stopped (signal %s); %d registrations", stop.signum, len(ms))
    return 0


def main() -> None:
    """Entry point of ``python -m nodes.mapserver``."""
    node_main("mapserver", run)


if __name__ == "__main__":
    main()
