"""The I/O half of a source's control interface: a UDP and/or Unix socket server, and a client.

The protocol itself (``join EID PORT``, ``leave ...``, ``list``) is sans-I/O in
:mod:`testbed.stream.destinations`.
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import time

from testbed.stream.destinations import ControlProtocol

UDP_REPLY_MAX = 60000


class ControlServer:
    """The I/O half of the control protocol: a UDP socket and/or a Unix stream socket."""

    def __init__(self, protocol: ControlProtocol, log: logging.Logger) -> None:
        self.protocol = protocol
        self.log = log
        self.sel = selectors.DefaultSelector()
        self.udp: socket.socket | None = None
        self.unix: socket.socket | None = None
        self.unix_path: str | None = None
        self._buffers: dict[socket.socket, bytes] = {}

    def open_udp(self, addr: str, port: int) -> int:
        """Bind the UDP control socket; return its port."""
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((addr, port))
        self.sel.register(self.udp, selectors.EVENT_READ, "udp")
        return self.udp.getsockname()[1]

    def open_unix(self, path: str) -> None:
        """Listen on a Unix stream socket at ``path`` (a stale file there is replaced)."""
        if os.path.exists(path):
            os.unlink(path)
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind(path)
        self.unix.listen(16)
        self.unix_path = path
        self.sel.register(self.unix, selectors.EVENT_READ, "listen")

    def poll(self, timeout: float) -> None:
        """Serve control traffic for up to ``timeout`` seconds (returns on the first batch)."""
        if not self.sel.get_map():
            if timeout > 0:
                time.sleep(timeout)
            return
        for key, _ in self.sel.select(max(timeout, 0.0)):
            try:
                self._serve(key)
            except OSError as exc:
                self.log.warning("control socket error: %s", exc)

    def _handle(self, data: bytes) -> list[str]:
        text = data.decode("utf-8", "replace")
        replies = self.protocol.handle_text(text, time.time())
        for reply in replies:
            self.log.info("control: %s", reply[:200])
        return replies

    def _serve(self, key: selectors.SelectorKey) -> None:
        sock = key.fileobj
        if key.data == "udp":
            data, peer = sock.recvfrom(65535)
            replies = self._handle(data)
            if replies:
                out = "\n".join(replies).encode()
                if len(out) > UDP_REPLY_MAX:
                    out = out[:UDP_REPLY_MAX].rsplit(b" ", 1)[0] + b" ..."
                sock.sendto(out + b"\n", peer)
        elif key.data == "listen":
            conn, _ = sock.accept()
            conn.settimeout(1.0)
            self._buffers[conn] = b""
            self.sel.register(conn, selectors.EVENT_READ, "conn")
        else:
            data = sock.recv(65536)
            buf = self._buffers[sock] + data
            if data:
                complete, _, rest = buf.rpartition(b"\n")
                self._buffers[sock] = rest
            else:
                complete, rest = buf, b""
            replies = self._handle(complete) if complete else []
            if replies:
                sock.sendall(("\n".join(replies) + "\n").encode())
            if not data:
                self.sel.unregister(sock)
                del self._buffers[sock]
                sock.close()

    def close(self) -> None:
        """Close every control socket and remove the Unix socket file."""
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()
        if self.unix_path and os.path.exists(self.unix_path):
            os.unlink(self.unix_path)


def control_request(target: str, lines: list[str], timeout: float = 2.0) -> list[str]:
    """Send control ``lines`` to a source at ``target`` (``ADDR:PORT`` or a Unix path); return the replies."""
    text = "".join(line.rstrip("\n") + "\n" for line in lines).encode()
    if "/" in target:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(target)
            sock.sendall(text)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    else:
        addr, _, port = target.rpartition(":")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(text, (addr, int(port)))
            data, _ = sock.recvfrom(65535)
    return data.decode("utf-8", "replace").splitlines()
