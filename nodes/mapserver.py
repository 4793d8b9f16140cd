"""The Map-Server/Map-Resolver: ``python -m nodes.mapserver --config FILE``.

A thin socket loop around :class:`testbed.lisp.mapserver.MapServer`: one UDP
socket bound to ``listen:port`` (default 4342), ``select`` with a timeout equal
to the time to the next timer (registration expiry, status and table writes).

Config (JSON object)::

    {"name": "ms", "listen": "10.255.0.1", "port": 4342, "expiry_s": 180, "negative_ttl_min": 15,
     "max_ttl_min": 1440, "rloc_prefixes": ["172.16.0.0/12"],
     "sites": [{"name": "as1", "key": "secret", "keys": {"1": "other-secret"},
                "algorithms": ["sha256", "sha1"], "prefixes": ["10.1.0.0/16"],
                "rloc_prefixes": ["172.16.1.0/24"]}],
     "ready_file": ..., "status_file": ..., "table_file": ..., "log_level": "info"}

A site key is used as the UTF-8 bytes of the string: ``key`` is Key ID 0,
``keys`` maps more Key IDs (0-255, as JSON strings) to keys; a site needs at
least one. ``rloc_prefixes`` (top level: the default for every site; per site:
that site's own) is the RLOC space every registered locator must lie in
(default any address; the testbed renders its RLOC block). ``max_ttl_min``
caps record TTLs (minutes, default one day). Times in the table are wall-clock
seconds (``time.time()``).

``table_file`` is the registration table: loaded at start (entries whose
expiry time has passed, or that the current config rejects, are dropped and
counted ``restore-expired`` / ``restore-invalid``; an unreadable file is
logged and ignored), and written atomically whenever the table changed (at
most once a second) and at exit, so a restarted Map-Server answers at once.
SIGUSR1 logs the table and writes it now. ``status_file`` (counters, and the
xTR-IDs and site-IDs of registrations that carried them) is written every
second and at exit. Every dropped message is logged with its reason, at most
:data:`LOG_BURST` lines a second (the rest are summarised), so a flood of
garbage cannot flood the log. Bad input never stops the loop.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import time
from typing import Any

from testbed.lisp.mapserver import MapServer, Site
from testbed.net.mmsg import BatchReceiver, BatchSender
from testbed.nodeutil import (ConfigError, StopFlag, mark_ready, node_main, setup_logging, write_json_atomic,
                              write_status_file)
from testbed.schemas import parse
from testbed.schemas.mapserver import MapServerConfig
from testbed.wire.constants import LISP_CONTROL_PORT
from testbed.wire.lispctrl import ALG_SHA1_96, ALG_SHA256_128

ALGORITHMS = {"sha256": ALG_SHA256_128, "sha1": ALG_SHA1_96}
LOG_BURST = 20
"""Drop log lines allowed per second."""
BATCH = 256  # datagrams handled before looking at signals and timers again
MMSG = 64  # datagrams per recvmmsg/sendmmsg (testbed/net/mmsg.py; plain calls if libc lacks them)
STATUS_PERIOD = 1.0
TABLE_PERIOD = 1.0
"""Seconds: the table file is rewritten at most this often (and at exit)."""


def load(cfg: dict[str, Any]) -> tuple[list[Site], dict[str, Any]]:
    """Validate the config against :class:`testbed.schemas.mapserver.MapServerConfig`.

    Return (sites, MapServer options); raise ConfigError with a one-line reason naming the field.
    """
    conf = parse(MapServerConfig, cfg)
    sites = []
    for s in conf.sites:
        key, keys = s.key_table()
        sites.append(Site(s.name, key, list(s.prefixes), frozenset(ALGORITHMS[a] for a in s.algorithms), keys,
                          tuple(s.rloc_prefixes) if s.rloc_prefixes is not None else None))
    return sites, {"expiry": float(conf.expiry_s), "negative_ttl": conf.negative_ttl_min,
                   "max_ttl": conf.max_ttl_min, "rloc_prefixes": list(conf.rloc_prefixes)}


def read_table(path: str | None, log: logging.Logger) -> list:
    """The registration rows of a table file; [] (logged) if it is missing or unreadable."""
    if not path or not os.path.exists(path):
        return []
    try:
        with open(path) as fh:
            rows = json.load(fh).get("registrations", [])
        return rows if isinstance(rows, list) else []
    except (OSError, ValueError, AttributeError) as exc:
        aside = path + ".corrupt"
        try:
            os.replace(path, aside)  # kept for a look, not overwritten by the next table write
        except OSError:
            aside = "(could not be moved aside)"
        log.warning("ignoring table file %s: %s; moved to %s", path, exc, aside)
        return []


def xtr_summary(ms: MapServer) -> dict[str, dict[str, Any]]:
    """{xTR-ID hex: {site, site_id, prefixes}} of the registrations that carried an xTR-ID (I bit)."""
    out: dict[str, dict[str, Any]] = {}
    for row in ms.table():
        if row["xtr_id"] is not None:
            entry = out.setdefault(row["xtr_id"], {"site": row["site"], "site_id": row["site_id"], "prefixes": []})
            entry["prefixes"].append(row["prefix"])
    return out


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
    """Write the registration table to ``table_file`` (atomically) if configured; a failure is logged."""
    path = cfg.get("table_file")
    if path:
        try:
            write_json_atomic(path, {"name": cfg.get("name", "mapserver"), "written_at": time.time(),
                                     "registrations": ms.table()})
        except OSError as exc:
            logging.getLogger(cfg.get("name", "mapserver")).warning("cannot write %s: %s", path, exc.strerror)


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
    sites, opts = load(cfg)
    name = cfg.get("name", "mapserver")
    log = setup_logging(name, cfg.get("log_level", "info"))
    ms = MapServer(sites, **opts)
    rows = read_table(cfg.get("table_file"), log)
    if rows:
        loaded = ms.restore(rows, time.time())
        log.info("table file: %d registrations restored, %d expired, %d rejected", loaded,
                 ms.counters.get("restore-expired", 0), ms.counters.get("restore-invalid", 0))
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
    rx, tx = BatchReceiver(sock, MMSG), BatchSender(sock, MMSG)  # 64 KiB slots, resident only as used
    texts: dict[bytes, str] = {}
    next_status = 0.0
    next_table = 0.0
    written = ms.version
    status_errors = 0  # status file writes that failed (its directory removed or unwritable)

    def status() -> dict[str, Any]:
        return {"name": name, "time": time.time(), "registrations": len(ms), "xtrs": xtr_summary(ms),
                "multicast": ms.multicast.summary(),
                "counters": dict(ms.counters, **{k: v for k, v in (("send-error", tx.counters["send-error"]),
                                                                    ("truncated", rx.counters["truncated"])) if v})}

    try:
        while not stop.is_set():
            now = time.time()
            if now >= next_status:
                if cfg.get("status_file") and not write_status_file(cfg["status_file"], status()):
                    status_errors += 1
                next_status = now + STATUS_PERIOD
            if usr1:
                usr1.clear()
                log_table(log, ms)
                written, next_table = -1, 0.0
            if ms.next_deadline() <= now:
                ms.on_timer(now)
            if ms.version != written and now >= next_table:
                written, next_table = ms.version, now + TABLE_PERIOD
                write_table(cfg, ms)
            pending = next_table if ms.version != written else float("inf")
            timeout = max(0.0, min(next_status, ms.next_deadline(), pending) - now)
            ready, _, _ = select.select([sock, wake_r], [], [], timeout)
            if wake_r in ready:
                try:
                    wake_r.recv(4096)
                except BlockingIOError:
                    pass
            if sock not in ready:
                continue
            for _ in range(BATCH // MMSG):
                try:
                    got = rx.recv()
                except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                    log.debug("recvmmsg: %s", exc)
                    continue
                now = time.time()
                for buf, src4, sport in got:
                    src = texts.get(src4)
                    if src is None:
                        if len(texts) >= 4096:
                            texts.clear()
                        src = texts[src4] = socket.inet_ntoa(src4)
                    for payload, dst, dport in ms.on_message(bytes(buf), src, sport, now):
                        try:
                            tx.add(payload, dst, dport)
                        except (OSError, OverflowError) as exc:
                            tx.counters["send-error"] += 1
                            log.debug("send to %s:%d: %s", dst, dport, exc)
                    if ms.last_drop is not None:
                        drops.drop(now, src, sport, *ms.last_drop)
                tx.flush()
                if len(got) < MMSG:
                    break
    finally:
        drops.flush(time.time())
        if cfg.get("status_file") and not write_status_file(cfg["status_file"], status()):
            status_errors += 1
        if status_errors:
            log.warning("status file %s: %d writes failed", cfg["status_file"], status_errors)
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
