"""Batched datagram I/O for the node loops: ``recvmmsg(2)`` and ``sendmmsg(2)`` through ctypes, with a plain fallback.

Python's socket module has neither call, so one system call per datagram used to
bound the xTR (docs/benchmarks.md). :class:`BatchReceiver` takes up to ``batch``
datagrams from a non-blocking socket in one ``recvmmsg`` (``MSG_DONTWAIT``);
:class:`BatchSender` queues datagrams with their destination and sends them in
one ``sendmmsg`` when the batch is full or on :meth:`BatchSender.flush`.

No allocation per datagram on the way out and one memoryview slice on the way
in: the ``mmsghdr``, ``iovec`` and ``sockaddr_in`` arrays and the buffers are
allocated once, the buffers in anonymous ``mmap`` memory, so a 64 KiB slot per
datagram costs only the pages a datagram touches (about 4 KiB for a 1,500-byte
packet), not 64 KiB of resident memory.

Which path runs is chosen once, at construction: ``mode="auto"`` takes the
system calls if libc has them (glibc on Linux), else the plain loop
(``recvmsg_into`` / ``sendto``, one call per datagram, same results and
counters); ``"mmsg"`` insists (OSError if unavailable), ``"plain"`` forces the
fallback. IPv4 (AF_INET) sockets only: addresses are 4-byte network-order
``bytes``.

Counters (``counters`` dict, counted drops, never exceptions for one bad datagram):
``truncated`` (a datagram longer than its slot, ``MSG_TRUNC``: dropped),
``send-error`` (a datagram the kernel refused, e.g. no route or ENOBUFS),
``calls`` (system calls made), ``datagrams`` (moved through them).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import socket
import struct
from typing import Iterable

MSG_DONTWAIT = 0x40
MSG_TRUNC = 0x20
SLOT = 65536
"""Buffer per datagram (bytes): the largest IPv4 UDP payload fits."""

__all__ = ["BatchReceiver", "BatchSender", "available", "SLOT"]


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.c_void_p), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _Msghdr), ("msg_len", ctypes.c_uint)]


_MMSG = ctypes.sizeof(_Mmsghdr)
_IOV = ctypes.sizeof(_Iovec)
_IOV_LEN_AT = _Iovec.iov_len.offset
_SOCKADDR = 16  # struct sockaddr_in
# (msg_flags, msg_len) of one mmsghdr, read for the whole batch with iter_unpack
_RESULT = struct.Struct(f"={_Msghdr.msg_flags.offset}xi"
                        f"{_Mmsghdr.msg_len.offset - _Msghdr.msg_flags.offset - 4}xI"
                        f"{_MMSG - _Mmsghdr.msg_len.offset - 4}x")
_IOV_LEN = struct.Struct("@N")  # size_t, native
_SIN = struct.Struct("=H2s4s8x")  # family (host order), port, address
_TTL_CK = struct.Struct("!BBH")  # an IPv4 header's TTL, protocol and checksum (offset 8)

_libc = None
_recvmmsg = None
_sendmmsg = None


def _load() -> bool:
    """Bind recvmmsg and sendmmsg from libc once; False if this libc has not got them."""
    global _libc, _recvmmsg, _sendmmsg
    if _libc is not None:
        return _recvmmsg is not None
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        _recvmmsg, _sendmmsg = _libc.recvmmsg, _libc.sendmmsg
    except (OSError, AttributeError):
        _libc = False
        return False
    _recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    _recvmmsg.restype = ctypes.c_int
    _sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    _sendmmsg.restype = ctypes.c_int
    return True


def available() -> bool:
    """True if recvmmsg and sendmmsg can be called here."""
    return _load()


def _choose(mode: str) -> bool:
    """Resolve ``mode`` (auto, mmsg, plain) to whether the system calls are used."""
    if mode not in ("auto", "mmsg", "plain"):
        raise ValueError(f"batch I/O mode {mode!r}: expected auto, mmsg or plain")
    if mode == "plain":
        return False
    if available():
        return True
    if mode == "mmsg":
        raise OSError(errno.ENOSYS, "recvmmsg/sendmmsg not available in this libc")
    return False


class _Arrays:
    """``batch`` mmsghdrs, each with one iovec onto a ``slot``-byte buffer and one ``namelen``-byte address.

    ``namelen``: 16 (``sockaddr_in``) or 20 (``sockaddr_ll``, a packet socket's address).
    """

    def __init__(self, batch: int, slot: int, namelen: int = _SOCKADDR) -> None:
        if not 1 <= batch <= 1024:
            raise ValueError(f"batch {batch} out of 1..1024")
        if not 1 <= slot <= SLOT:
            raise ValueError(f"slot {slot} out of 1..{SLOT}")
        self.batch, self.slot, self.namelen = batch, slot, namelen
        self.buf = mmap.mmap(-1, batch * slot)  # anonymous: only touched pages become resident
        self.view = memoryview(self.buf)
        self.hdrs = (_Mmsghdr * batch)()
        self.iovs = (_Iovec * batch)()
        self.names = (ctypes.c_char * (batch * namelen))()
        self.hdr_view = memoryview(self.hdrs).cast("B")
        self.iov_view = memoryview(self.iovs).cast("B")
        self.name_view = memoryview(self.names).cast("B")
        anchor = ctypes.c_char.from_buffer(self.buf)
        base = ctypes.addressof(anchor)  # stays valid while self.buf is open (an mmap never moves)
        del anchor  # no lasting export, so close() can unmap
        names = ctypes.addressof(self.names)
        for i in range(batch):
            self.iovs[i].iov_base, self.iovs[i].iov_len = base + i * slot, slot
            hdr = self.hdrs[i].msg_hdr
            hdr.msg_name, hdr.msg_namelen = names + i * namelen, namelen
            hdr.msg_iov, hdr.msg_iovlen = ctypes.addressof(self.iovs[i]), 1
        self.addr = ctypes.addressof(self.hdrs)
        self.slots = [self.view[i * slot:(i + 1) * slot] for i in range(batch)]

    def close(self) -> None:
        """Unmap the buffers; if a caller still holds a payload view, they go with the last reference instead."""
        for v in self.slots:
            v.release()
        self.slots = []
        self.view.release()
        try:
            self.buf.close()
        except BufferError:
            pass


class BatchReceiver:
    """Receive up to ``batch`` datagrams per call from a non-blocking IPv4 UDP socket.

    :meth:`recv` returns ``[(payload, source address, source port)]`` in arrival order:
    ``payload`` a memoryview into this receiver's buffers (valid until the next
    :meth:`recv`), the address 4 bytes in network order, the port an int. An empty list means nothing was waiting
    (EAGAIN); other socket errors are raised as OSError, as ``recvfrom`` would.
    """

    def __init__(self, sock: socket.socket, batch: int = 64, slot: int = SLOT, mode: str = "auto") -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.mmsg = _choose(mode)
        self.arrays = _Arrays(batch, slot)
        self.counters = {"truncated": 0, "calls": 0, "datagrams": 0}

    def recv(self) -> list[tuple[memoryview, bytes, int]]:
        """Take what is waiting, at most ``batch`` datagrams (see the class docstring)."""
        a = self.arrays
        if not self.mmsg:
            return self._recv_plain()
        n = _recvmmsg(self.fd, a.addr, a.batch, MSG_DONTWAIT, None)
        c = self.counters
        c["calls"] += 1
        if n <= 0:
            if n < 0:
                err = ctypes.get_errno()
                if err not in (errno.EAGAIN, errno.EINTR):
                    raise OSError(err, "recvmmsg: " + errno.errorcode.get(err, str(err)))
            return []
        c["datagrams"] += n
        out = []
        slots, names = a.slots, a.name_view
        i = 0
        for flags, length in _RESULT.iter_unpack(a.hdr_view[:n * _MMSG]):
            if flags & MSG_TRUNC:
                c["truncated"] += 1
            else:
                off = i * _SOCKADDR
                out.append((slots[i][:length], bytes(names[off + 4:off + 8]), names[off + 2] << 8 | names[off + 3]))
            i += 1
        return out

    def _recv_plain(self) -> list[tuple[memoryview, bytes, int]]:
        """The fallback: one recvmsg_into per datagram until EAGAIN or a full batch."""
        a, c = self.arrays, self.counters
        recv = self.sock.recvmsg_into
        out = []
        for i in range(a.batch):
            try:
                c["calls"] += 1
                n, _anc, flags, addr = recv([a.slots[i]])
            except (BlockingIOError, InterruptedError):
                break
            c["datagrams"] += 1
            if flags & MSG_TRUNC:
                c["truncated"] += 1
                continue
            out.append((a.slots[i][:n], socket.inet_aton(addr[0]), addr[1]))
        return out

    def close(self) -> None:
        """Release the buffers (the socket stays open: it is the caller's)."""
        self.arrays.close()


class BatchSender:
    """Queue datagrams with their IPv4 destination; send them ``batch`` at a time with ``sendmmsg``.

    :meth:`add` copies the datagram into a preallocated slot (so the caller may reuse
    its buffer at once) and sends the batch when it is full; :meth:`flush` sends what
    is queued. Order is kept. A datagram the kernel refuses is counted
    (``send-error``) and skipped; the rest of the batch still goes. Destination port:
    ``port`` unless :meth:`add` names one (0 for raw IP sockets). A blocking socket blocks as
    ``sendto`` would; a non-blocking one counts EAGAIN as a send error.
    """

    def __init__(self, sock: socket.socket, batch: int = 64, slot: int = SLOT, mode: str = "auto",
                 port: int = 0, namelen: int = _SOCKADDR) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.mmsg = _choose(mode)
        self.arrays = _Arrays(batch, slot, namelen)
        self.port = port
        self.pending = 0
        self._dests: dict[tuple[str, int], bytes] = {}
        self._plain: list[tuple[bytes, tuple[str, int]]] = []
        self.counters = {"send-error": 0, "too-big": 0, "calls": 0, "datagrams": 0}

    def _sockaddr(self, key: tuple[str, int]) -> bytes:
        """The 16-byte sockaddr_in of (dotted quad, port), cached."""
        sa = self._dests.get(key)
        if sa is None:
            if len(self._dests) >= 4096:
                self._dests.clear()
            sa = self._dests[key] = _SIN.pack(socket.AF_INET, key[1].to_bytes(2, "big"), socket.inet_aton(key[0]))
        return sa

    def add(self, data: bytes | bytearray | memoryview, dst: str, port: int = -1) -> None:
        """Queue ``data`` for ``dst`` (dotted quad) and ``port`` (default: the sender's); send the batch if full.

        Raises OSError for a malformed ``dst`` (as sendto would), OverflowError for a
        port out of range; a datagram longer than the slot is counted ('too-big') and dropped.
        """
        a = self.arrays
        n = len(data)
        if n > a.slot:
            self.counters["too-big"] += 1
            return
        i = self.pending
        key = (dst, self.port if port < 0 else port)
        if self.mmsg:
            sa = self._sockaddr(key)
            off = i * a.slot
            a.view[off:off + n] = data
            _IOV_LEN.pack_into(a.iov_view, i * _IOV + _IOV_LEN_AT, n)
            a.name_view[i * _SOCKADDR:(i + 1) * _SOCKADDR] = sa
        else:
            self._sockaddr(key)  # the same errors now as the system call path gives
            self._plain.append((bytes(data), key))
        self.pending = i + 1
        if i + 1 >= a.batch:
            self.flush()

    def add_forward(self, pkt: bytes | bytearray | memoryview, name: bytes, addr: tuple) -> None:
        """Queue IPv4 packet ``pkt`` as a router forwards it: TTL minus one, header checksum updated.

        The update is the kernel's ``ip_decrease_ttl`` (checksum + 0x0100, end-around
        carry), so the bytes sent equal what the kernel's forwarding would send.
        ``name``: the prebuilt destination address of ``namelen`` bytes (for a packet
        socket, a ``sockaddr_ll``); ``addr``: the same address as ``sendto`` takes
        it (the plain fallback). The caller has checked that ``pkt`` is a well formed
        IPv4 packet with a TTL above 1; one longer than the slot is counted ('too-big').
        """
        a = self.arrays
        n = len(pkt)
        if n > a.slot:
            self.counters["too-big"] += 1
            return
        i = self.pending
        ttl, proto, ck = _TTL_CK.unpack_from(pkt, 8)
        ck += 0x100
        if ck >= 0xFFFF:
            ck = (ck + 1) & 0xFFFF
        if self.mmsg:
            off = i * a.slot
            v = a.view
            v[off:off + n] = pkt
            _TTL_CK.pack_into(v, off + 8, ttl - 1, proto, ck)
            _IOV_LEN.pack_into(a.iov_view, i * _IOV + _IOV_LEN_AT, n)
            nl = a.namelen
            a.name_view[i * nl:(i + 1) * nl] = name
        else:
            out = bytearray(pkt)
            _TTL_CK.pack_into(out, 8, ttl - 1, proto, ck)
            self._plain.append((bytes(out), addr))
        self.pending = i + 1
        if i + 1 >= a.batch:
            self.flush()

    def extend(self, items: Iterable[tuple[bytes, str, int]]) -> None:
        """:meth:`add` every (datagram, destination, port) of ``items``."""
        for data, dst, port in items:
            self.add(data, dst, port)

    def flush(self) -> int:
        """Send every queued datagram; return how many the kernel took."""
        n = self.pending
        if not n:
            return 0
        self.pending = 0
        c = self.counters
        if not self.mmsg:
            return self._flush_plain()
        a = self.arrays
        sent = done = 0
        while done < n:
            c["calls"] += 1
            r = _sendmmsg(self.fd, a.addr + done * _MMSG, n - done, 0)
            if r < 0:
                err = ctypes.get_errno()
                if err == errno.EINTR:
                    continue
                c["send-error"] += 1  # the first datagram of the rest was refused: skip it
                done += 1
            elif r == 0:  # nothing taken and no error: do not spin on it
                c["send-error"] += 1
                done += 1
            else:
                sent += r
                done += r
        c["datagrams"] += sent
        return sent

    def _flush_plain(self) -> int:
        """The fallback: one sendto per queued datagram."""
        c, sent = self.counters, 0
        send = self.sock.sendto
        items, self._plain = self._plain, []
        for data, key in items:
            c["calls"] += 1
            try:
                send(data, key)
                sent += 1
            except OSError:
                c["send-error"] += 1
        c["datagrams"] += sent
        return sent

    def close(self) -> None:
        """Send what is queued, then release the buffers (the socket stays open)."""
        self.flush()
        self.arrays.close()
