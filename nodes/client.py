"""An unmodified stream receiver: ``python -m nodes.client --config FILE``.

One plain UDP socket on ``bind:port`` serves one EID (a host per client) or
many (a host to which a block of client EIDs is routed as local): IP_PKTINFO
tells each datagram's destination EID, SO_TIMESTAMPNS its kernel arrival time,
SO_RXQ_OVFL the socket's drop count. Every datagram is appended to the binary
record file (:mod:`testbed.stream.records`); per-EID counters go to the status
file every second and at exit (SIGTERM).

Player mode (``player: true``): ffmpeg records the stream as a real player
would. ``player_mode`` "udp" (default): ffmpeg itself receives the datagrams
from the client's bound UDP socket (passed as ``-i pipe:FD``; at exit a
``shutdown(SHUT_RD)`` gives ffmpeg a clean end of input), no per-datagram
record; "pipe": this process receives and records as usual and pipes the
payloads into ffmpeg's stdin. Either way ffmpeg remuxes
(``-c copy``) to ``player_file`` and, at exit, ``ffprobe`` counts its frames.
See docs/streaming.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

from testbed.nodeutil import ConfigError, StopFlag, mark_ready, node_main, setup_logging, write_status_file
from testbed.schemas import parse
from testbed.schemas.client import ClientSchema
from testbed.stream.content import count_frames
from testbed.stream.records import ClientRecordWriter

IP_PKTINFO = 8          # Linux, <linux/in.h>; socket.IP_PKTINFO only exists from Python 3.12
IP_ADD_SOURCE_MEMBERSHIP = 39  # Linux, <linux/in.h>; not in Python 3.11's socket module
SO_TIMESTAMPNS = 35     # Linux, <asm-generic/socket.h> (SCM_TIMESTAMPNS has the same value)
SO_RXQ_OVFL = 40
SO_RCVBUFFORCE = 33
_TIMESPEC = struct.Struct("@qq")
_U32 = struct.Struct("@I")
_ANC_SIZE = socket.CMSG_SPACE(12) + socket.CMSG_SPACE(16) + socket.CMSG_SPACE(4)


@dataclass
class ClientConfig:
    """A checked client configuration."""

    name: str
    port: int
    bind: str
    eids: list[str]
    record_file: str | None
    status_file: str | None
    player: bool
    player_mode: str
    player_file: str | None
    count_frames: bool
    rcvbuf: int
    player_app: str = "ffmpeg"
    ssm: tuple[str, str] | None = None
    ssm_join_dir: str | None = None
    status_interval_s: float = 1.0


def parse_config(cfg: dict) -> ClientConfig:
    """Check a client config dict against :class:`testbed.schemas.client.ClientSchema`; ConfigError (one line)."""
    c = parse(ClientSchema, cfg)
    return ClientConfig(c.name, c.port, c.bind, list(c.eids), c.record_file, c.status_file, c.player,
                        c.player_mode, c.player_file, c.count_frames, c.rcvbuf, c.player_app,
                        (c.ssm.source, c.ssm.group) if c.ssm else None, c.ssm_join_dir, c.status_interval_s)


def vlc_command(as_root: bool | None = None) -> list[str]:
    """The argv of the VLC player (Debian's vlc-bin): ``cvlc`` reads the stream on stdin, records it on stdout.

    VLC refuses to run as root, so a root client runs it as ``nobody`` (setpriv,
    no capabilities, a clean environment); the client opens the recording and
    hands it to VLC as stdout, so ``nobody`` needs no access to the run directory.
    VLC's dump demuxer writes the stream as VLC received it (its TS remux,
    ``--sout '#std{mux=ts}'``, drops the pictures still in its packetizer at the
    end of the input: 5 of 100 in a test). ``--play-and-exit`` and ``vlc://quit``:
    VLC exits at the end of its input.
    """
    as_root = os.geteuid() == 0 if as_root is None else as_root
    cmd = ["cvlc", "-q", "--play-and-exit", "--no-interact", "--demux=dump", "--demuxdump-file=-", "-",
           "vlc://quit"]
    if not as_root:
        return cmd
    uid, gid = _nobody()
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "env", "-i", "PATH=/usr/bin:/bin", "HOME=/nonexistent", *cmd]


def _nobody() -> tuple[int, int]:
    import pwd
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return pw.pw_uid, pw.pw_gid


def player_command(source: str, out: str) -> list[str]:
    """Return the ffmpeg argv that records the MPEG-TS read from ``source`` (``pipe:N``) to ``out``."""
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    if source != "pipe:0":
        cmd.append("-nostdin")
    return cmd + ["-f", "mpegts", "-i", source, "-map", "0", "-c", "copy", "-f", "mpegts", out]


class ClientNode:
    """The receive loop, the per-EID counters and the optional ffmpeg player."""

    def __init__(self, conf: ClientConfig, log: logging.Logger, stop: StopFlag) -> None:
        self.conf = conf
        self.log = log
        self.stop = stop
        self.sock: socket.socket | None = None
        self.writer: ClientRecordWriter | None = None
        self.player: subprocess.Popen | None = None
        self.per_eid: dict[bytes, list] = {socket.inet_aton(e): [0, 0, None, None] for e in conf.eids}
        self.others: dict[bytes, list] = {}
        self.received = 0
        self.bytes = 0
        self.socket_drops = 0
        self.rcvbuf = 0
        self.state = "starting"
        self.frames: int | None = None
        self.error = ""
        self.status_errors = 0  # status file writes that failed (its directory removed or unwritable)
        self.ssm_group = b""
        self.ssm_joined: float | None = None
        """Wall-clock time (time.time(), as the kernel's arrival stamps) of the (S,G) join, once joined."""

    def open(self) -> dict:
        """Bind the socket, start the player if any; return ready-file info."""
        conf = self.conf
        info: dict = {"port": conf.port, "bind": conf.bind, "eids": len(conf.eids)}
        sock = self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, conf.rcvbuf)
        except OSError:  # not root: capped by net.core.rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, conf.rcvbuf)
        self.rcvbuf = info["rcvbuf"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        try:
            sock.bind((conf.bind, conf.port))
        except OSError as exc:
            raise ConfigError(f"cannot bind {conf.bind}:{conf.port}: {exc.strerror}") from None
        if conf.ssm:  # lispmc, ipmc: join (S,G) now, or once ssm_join_dir names one of our EIDs
            self.ssm_group = socket.inet_aton(conf.ssm[1])
            info["ssm"] = list(conf.ssm)
            self.join_due()
        if conf.player and conf.player_mode == "udp":
            # ffmpeg reads the datagrams from this very socket (pipe:FD); close() wakes it with
            # shutdown(SHUT_RD), which ffmpeg sees as the end of the input and finishes the file.
            fd = sock.fileno()
            self.player = self._spawn(player_command(f"pipe:{fd}", conf.player_file), subprocess.DEVNULL, (fd,))
            info["player"] = "udp"
            return info
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 200_000))
        if conf.record_file:
            self.writer = ClientRecordWriter(conf.record_file, {"name": conf.name, "port": conf.port,
                                                                "bind": conf.bind, "eids": conf.eids})
        if conf.player:
            if conf.player_app == "vlc":
                with open(conf.player_file, "wb") as recording:  # VLC's stdout; the child keeps its own copy
                    self.player = self._spawn(vlc_command(), subprocess.PIPE, (), stdout=recording)
            else:
                self.player = self._spawn(player_command("pipe:0", conf.player_file), subprocess.PIPE, ())
            info["player"] = "pipe"
        return info

    def join_due(self) -> bool:
        """Join (S,G) if due (no ``ssm_join_dir``, or a file there names one of our EIDs); True once joined.

        The kernel sends the IGMPv3 report on the interface the group routes out of; the
        join time is kept (``ssm_joined``). While a join is pending the socket's receive
        timeout is 20 ms, so the join follows its file within about that.
        """
        conf = self.conf
        if self.ssm_joined is not None or not conf.ssm:
            return self.ssm_joined is not None
        if conf.ssm_join_dir is not None:
            try:
                due = not set(conf.eids).isdisjoint(os.listdir(conf.ssm_join_dir))
            except OSError:
                due = False
            if not due:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 20_000))
                return False
        src, group = conf.ssm
        iface = "0.0.0.0"  # not an EID: on a host serving a block of EIDs they are local routes, not the LAN
        self.ssm_joined = time.time()
        self.sock.setsockopt(socket.IPPROTO_IP, IP_ADD_SOURCE_MEMBERSHIP,   # struct ip_mreq_source: G, iface, S
                             socket.inet_aton(group) + socket.inet_aton(iface) + socket.inet_aton(src))
        if conf.ssm_join_dir is not None:  # back to the receive loop's usual timeout
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("@ll", 0, 200_000))
        self.log.info("joined (%s, %s)", src, group)
        return True

    def _spawn(self, cmd: list[str], stdin, fds: tuple[int, ...], stdout=subprocess.DEVNULL) -> subprocess.Popen:
        try:
            return subprocess.Popen(cmd, stdin=stdin, stdout=stdout, pass_fds=fds)
        except OSError as exc:
            raise ConfigError(f"cannot run {cmd[0]}: {exc.strerror}") from None

    def status(self) -> dict:
        """Return the status-file contents."""
        def row(v: list) -> dict:
            return {"received": v[0], "bytes": v[1], "first": v[2], "last": v[3]}
        st = {"name": self.conf.name, "state": self.state, "time": time.time(), "received": self.received,
              "bytes": self.bytes, "socket_drops": self.socket_drops, "rcvbuf": self.rcvbuf,
              "eids": {socket.inet_ntoa(k): row(v) for k, v in self.per_eid.items()},
              "other_eids": {socket.inet_ntoa(k): row(v) for k, v in self.others.items()}, "error": self.error}
        if self.conf.ssm:
            st["ssm_joined"] = self.ssm_joined
        if self.conf.player:
            path = self.conf.player_file
            st["player_bytes"] = os.path.getsize(path) if os.path.exists(path) else 0
            st["frames"] = self.frames
        return st

    def write_status(self) -> None:
        """Write the status file if configured."""
        if self.conf.status_file and not write_status_file(self.conf.status_file, self.status()):
            self.status_errors += 1

    def run(self) -> int:
        """Receive until SIGTERM; return the exit code."""
        self.state = "receiving"
        self.write_status()
        next_status = time.time() + self.conf.status_interval_s
        if self.conf.player and self.conf.player_mode == "udp":  # ffmpeg receives
            while not self.stop.is_set():
                if self.player.poll() is not None:
                    return self._fail(f"ffmpeg exited early with code {self.player.returncode}")
                time.sleep(0.1)
                if time.time() >= next_status:
                    self.write_status()
                    next_status = time.time() + self.conf.status_interval_s
            return 0
        recvmsg = self.sock.recvmsg
        blake2b = hashlib.blake2b
        add = self.writer.add if self.writer else None
        pipe = self.player.stdin if self.player else None
        per_eid, others = self.per_eid, self.others
        default_dst = socket.inet_aton(self.conf.bind)
        pending = not self.join_due()
        while not self.stop.is_set():
            if pending:
                pending = not self.join_due()
            try:
                data, anc, _flags, _addr = recvmsg(65535, _ANC_SIZE)
            except (BlockingIOError, InterruptedError):
                data = None
            if data is not None:
                t, dst = None, default_dst
                for level, ctype, cdata in anc:
                    if ctype == IP_PKTINFO and level == socket.IPPROTO_IP:
                        dst = cdata[8:12]
                    elif ctype == SO_TIMESTAMPNS and level == socket.SOL_SOCKET:
                        sec, nsec = _TIMESPEC.unpack_from(cdata)
                        t = sec + nsec * 1e-9
                    elif ctype == SO_RXQ_OVFL and level == socket.SOL_SOCKET:
                        self.socket_drops = _U32.unpack_from(cdata)[0]
                if t is None:
                    t = time.time()
                n = len(data)
                if dst == self.ssm_group:   # one multicast copy serves every EID of this host
                    self._multicast(t, data, add)
                    continue
                if add:
                    add(t, dst, n, blake2b(data, digest_size=8).digest())
                row = per_eid.get(dst)
                if row is None:
                    row = others.get(dst)
                    if row is None:
                        row = others[dst] = [0, 0, None, None]
                        self.log.warning("datagram for unexpected EID %s", socket.inet_ntoa(dst))
                row[0] += 1
                row[1] += n
                if row[2] is None:
                    row[2] = t
                row[3] = t
                self.received += 1
                self.bytes += n
                if pipe:
                    try:
                        pipe.write(data)
                    except (BrokenPipeError, ValueError):
                        return self._fail(f"{self.conf.player_app} player exited early")
            now = time.time()
            if now >= next_status:
                self.write_status()
                next_status = now + self.conf.status_interval_s
        return 0

    def _multicast(self, t: float, data: bytes, add) -> None:
        """Count (and record) one (S,G) datagram for each EID the host serves."""
        n = len(data)
        digest = hashlib.blake2b(data, digest_size=8).digest()
        for eid, row in self.per_eid.items():
            if add:
                add(t, eid, n, digest)
            row[0] += 1
            row[1] += n
            if row[2] is None:
                row[2] = t
            row[3] = t
        self.received += 1
        self.bytes += n
        if self.player and self.player.stdin:
            try:
                self.player.stdin.write(data)
            except (BrokenPipeError, ValueError):
                pass

    def _fail(self, message: str) -> int:
        self.state = "failed"
        self.error = message
        self.log.error("%s", message)
        return 1

    def close(self) -> None:
        """Flush the record, stop the player and count its frames, write the final status."""
        if self.writer:
            self.writer.close()
        if self.player:
            self._stop_player()
        if self.sock:
            self.sock.close()
        if self.player and self.conf.count_frames:
            if self.conf.count_frames:
                self.frames = count_frames(self.conf.player_file)
        if self.state == "failed":
            self.write_status()
            return
        self.state = "stopped"
        self.log.info("%s: %d datagrams, %d bytes, %d EIDs heard, socket drops %d%s", self.state, self.received,
                      self.bytes, sum(1 for v in self.per_eid.values() if v[0]) + len(self.others),
                      self.socket_drops, f", player frames {self.frames}" if self.frames is not None else "")
        self.write_status()
        if self.status_errors:
            self.log.warning("status file %s: %d writes failed", self.conf.status_file, self.status_errors)

    def _stop_player(self) -> None:
        proc = self.player
        if proc.stdin:
            try:
                proc.stdin.close()   # EOF: ffmpeg finishes the file and exits
            except OSError:
                pass
        else:
            try:
                self.sock.shutdown(socket.SHUT_RD)  # wakes ffmpeg's read() with EOF
            except OSError:
                pass  # ENOTCONN on an unconnected UDP socket, but the shutdown still applies
        try:
            proc.wait(10.0)
        except subprocess.TimeoutExpired:
            self.log.error("%s player did not finish within 10 s; killed", self.conf.player_app)
            proc.kill()
            proc.wait()


def run(cfg: dict) -> int:
    """Run the client from a config dict; return the exit code."""
    conf = parse_config(cfg)
    log = setup_logging(conf.name, cfg.get("log_level", "info"))
    stop = StopFlag()
    node = ClientNode(conf, log, stop)
    try:
        try:
            info = node.open()
        except ConfigError as exc:
            node.state, node.error = "failed", str(exc)
            raise
        mark_ready(cfg, **info)
        return node.run()
    finally:
        node.close()


def main() -> None:
    """Entry point of ``python -m nodes.client`` (and of a child forked by testbed.net.launcher)."""
    node_main("client", run)


if __name__ == "__main__":
    main()
