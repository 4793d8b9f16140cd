"""Traffic roles of the namespace benchmarks, run *inside* Mininet nodes (stdlib + testbed.wire only).

``python bench/traffic.py ROLE ...``:

* ``send TRIAL TARGETS RATE COUNT SIZE SPORT DPORT``: a paced UDP blaster;
* ``cc-send TRIAL SERVICE PORT RATE REFS TARGETS SRC_EID SIZE [batch] [mode=MODE]``: a CoreCast
  source (DATA + one REF per client per chunk, or REF lists: ``traffic_cc.role_cc_send``) towards an
  ITR's service address;
* ``recv PORT STATUS READY STOP``: counts datagrams per trial, any local address.

A last argument ``batch`` makes a role use recvmmsg/sendmmsg (testbed/net/mmsg.py),
so that the load generator takes less of the machine's CPU than the path it measures.

Each sender prints one JSON line (sent, send_errors, seconds, achieved). Every
datagram (or chunk) starts with the 4-byte trial number, so one receiver serves
all trials of a run. ``TARGETS`` is an address or ``@FILE`` (one address a line).

The controlling side, used by the bench scripts outside the nodes:
:class:`Receiver`, :func:`run_roles`, :func:`merge_sends`, :func:`udp_sender`.
Traffic only ever goes to addresses inside the benchmark's own namespaces.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

CLIENT_PORT = 6000
SOURCE_PORT = 5000
TRIAL = struct.Struct("!I")
"""The trial number at the start of every payload."""
SELF = os.path.abspath(__file__)

from common import read_json, wait_for  # noqa: E402  (bench/ is on sys.path: the scripts live there)



def read_targets(spec: str) -> list[str]:
    """Destination addresses: ``spec`` itself, or the lines of file ``@PATH``."""
    if spec.startswith("@"):
        with open(spec[1:]) as fh:
            return [line.strip() for line in fh if line.strip()]
    return [spec]


def write_targets(path: str, addrs: list[str]) -> str:
    """Write destination addresses one per line; return ``@path`` for the traffic roles."""
    with open(path, "w") as fh:
        fh.write("\n".join(addrs) + "\n")
    return "@" + path


def role_send(trial: int, targets: str, rate: float, count: int, size: int, ports: tuple[int, int],
              batch: bool = False) -> dict[str, Any]:
    """Send ``count`` UDP datagrams of ``size`` bytes paced at ``rate``/s (0: as fast as possible).

    ``targets`` (see :func:`read_targets`) are used in turn, one datagram each.
    Pacing keeps sent == rate x elapsed, in bursts of at most 64.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.bind(("0.0.0.0", ports[0]))
    payload = TRIAL.pack(trial) + bytes(size - 4)
    addrs = [(a, ports[1]) for a in read_targets(targets)]
    n_t = len(addrs)
    errors = 0
    tx = None
    if batch:
        from testbed.net.mmsg import BatchSender
        tx = BatchSender(s, 64, 2048, port=ports[1])
        hosts = [a for a, _p in addrs]

        def send(i: int) -> None:
            tx.add(payload, hosts[i % n_t])
    elif n_t == 1:
        s.connect(addrs[0])
        send_one = s.send

        def send(i: int) -> None:
            send_one(payload)
    else:
        sendto = s.sendto

        def send(i: int) -> None:
            sendto(payload, addrs[i % n_t])
    clock, sleep = time.perf_counter, time.sleep
    t0 = clock()
    sent = 0
    while sent < count:
        due = count if rate <= 0 else min(count, int((clock() - t0) * rate) + 1)
        if due <= sent:
            sleep(0.0002)
            continue
        for i in range(sent, min(due, sent + 64)):
            try:
                send(i)
            except OSError:
                errors += 1
            sent += 1
        if tx is not None:
            tx.flush()
    if tx is not None:
        errors += tx.counters["send-error"]
    elapsed = clock() - t0
    return {"sent": count - errors, "send_errors": errors, "seconds": elapsed, "achieved": (count - errors) / elapsed}


def role_recv(port: int, status_file: str, ready_file: str, stop_file: str, batch: bool = False) -> None:
    """Count datagrams per trial on UDP ``port`` (any local address) until ``stop_file`` appears.

    The counts go to ``status_file`` (atomically) when the socket has been idle for
    50 ms and at least every 0.1 s while busy, so a reader sees a trial's count grow
    and then settle shortly after the trial ends. The socket is non-blocking and
    polled only when empty: one system call per datagram while traffic flows.
    """
    import select
    from testbed.nodeutil import write_json_atomic
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    s.bind(("0.0.0.0", port))
    s.setblocking(False)
    poller = select.poll()
    poller.register(s.fileno(), select.POLLIN)
    buf = bytearray(2048)
    recv = s.recv_into
    counts: dict[int, int] = {}
    unpack = TRIAL.unpack_from
    clock = time.monotonic

    def flush() -> float:
        write_json_atomic(status_file, {str(k): v for k, v in counts.items()})
        return clock()

    write_json_atomic(ready_file, {"pid": os.getpid()})
    last_write, dirty, since = flush(), False, 0
    if batch:
        from testbed.net.mmsg import BatchReceiver
        rx = BatchReceiver(s, 64, 2048)
        while True:
            got = rx.recv()
            if not got:
                if not poller.poll(50):
                    if dirty:
                        last_write, dirty = flush(), False
                    if os.path.exists(stop_file):
                        break
                continue
            for payload, _src, _port in got:
                if len(payload) >= 4:
                    key = unpack(payload)[0]
                    counts[key] = counts.get(key, 0) + 1
            dirty = True
            since += len(got)
            if since >= 512:
                since = 0
                if clock() - last_write >= 0.1:
                    last_write, dirty = flush(), False
        flush()
        return
    while True:
        try:
            n = recv(buf)
        except BlockingIOError:
            if not poller.poll(50):  # idle for 50 ms
                if dirty:
                    last_write, dirty = flush(), False
                if os.path.exists(stop_file):
                    break
            continue
        if n >= 4:
            key = unpack(buf)[0]
            counts[key] = counts.get(key, 0) + 1
        dirty = True
        since += 1
        if since >= 512:
            since = 0
            if clock() - last_write >= 0.1:
                last_write, dirty = flush(), False
    flush()


# ------------------------------------------------------------------ the controlling side (outside the nodes)


class Receiver:
    """A ``recv`` role running in a Mininet node, read through its status file."""

    def __init__(self, node: Any, workdir: str, name: str, port: int = CLIENT_PORT, batch: bool = False) -> None:
        self.node = node
        self.status = os.path.join(workdir, f"{name}.counts.json")
        self.ready = os.path.join(workdir, f"{name}.ready")
        self.stop_file = os.path.join(workdir, f"{name}.stop")
        for path in (self.status, self.ready, self.stop_file):
            if os.path.exists(path):
                os.unlink(path)
        self.proc = node.popen([sys.executable, SELF, "recv", str(port), self.status,
                                self.ready, self.stop_file] + (["batch"] if batch else []), cwd=ROOT)
        try:
            wait_for(lambda: os.path.exists(self.ready) or self.proc.poll() is not None, 20,
                     f"receiver in {node.name}")
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        if self.proc.poll() is not None:
            raise RuntimeError(f"receiver in {node.name} exited with {self.proc.returncode}")

    def count(self, trial: int) -> int:
        """The datagrams of ``trial`` counted so far."""
        return int(read_json(self.status).get(str(trial), 0))

    def settled(self, trial: int, expected: int, quiet: float = 0.5, limit: float = 15.0) -> int:
        """Wait until the count of ``trial`` reaches ``expected`` or stops growing for ``quiet`` s; return it."""
        from common import settle
        return settle(lambda: self.count(trial), expected, quiet, limit)

    def stop(self) -> None:
        """Ask the receiver to exit (stop file), then make sure it has."""
        with open(self.stop_file, "w"):
            pass
        try:
            self.proc.wait(3)
        except Exception:
            self.proc.kill()
            self.proc.wait()


def run_roles(node: Any, arg_lists: list[list[str]], timeout: float = 60.0) -> list[dict[str, Any]]:
    """Run traffic roles in ``node`` at the same time, to completion; return their JSON results."""
    procs = [node.popen([sys.executable, SELF, *args], cwd=ROOT,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for args in arg_lists]
    results = []
    try:
        for args, proc in zip(arg_lists, procs):
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{args[0]} in {node.name} did not finish in {timeout:.0f} s") from None
            if proc.returncode:
                raise RuntimeError(f"{args[0]} in {node.name} failed: {err.strip()[-500:]}")
            results.append(json.loads(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def run_role(node: Any, args: list[str], timeout: float = 60.0) -> dict[str, Any]:
    """Run one traffic role in ``node`` to completion and return its JSON result."""
    return run_roles(node, [args], timeout)[0]


def merge_sends(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Combine the results of parallel senders: sums, the longest duration, the total rate."""
    sent = sum(r["sent"] for r in results)
    seconds = max(r["seconds"] for r in results)
    out = {"sent": sent, "send_errors": sum(r["send_errors"] for r in results), "seconds": seconds,
           "achieved": sent / seconds if seconds else 0.0, "senders": len(results)}
    if all("data_sent" in r for r in results):
        out["data_sent"] = sum(r["data_sent"] for r in results)
    return out


def udp_sender(node: Any, targets: str, senders: int = 1, size: int = 1316,
               batch: bool = False) -> Callable[..., dict]:
    """A ``send`` callable for ``common.TrialRunner``: ``senders`` parallel ``send`` roles in ``node``."""
    def send(trial: int, rate: float, count: int) -> dict[str, Any]:
        return merge_sends(run_roles(node, [
            ["send", str(trial), targets, str(rate / senders), str(count // senders), str(size),
             str(SOURCE_PORT + i), str(CLIENT_PORT)] + (["batch"] if batch else []) for i in range(senders)]))
    return send


# Positional arguments per role: name -> checker (str -> value, ValueError with the reason).
def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text, 10)
        if not low <= value <= high:
            raise ValueError(f"not within {low}..{high}")
        return value
    return parse


def _rate(text: str) -> float:
    value = float(text)
    if not (value == value and 0 <= value < float("inf")):
        raise ValueError("not a finite number >= 0 (0: unpaced)")
    return value


_ANY = str
_ROLES: dict[str, tuple[tuple[str, Callable[[str], Any]], ...]] = {
    "send": (("TRIAL", _whole(0, 0xFFFFFFFF)), ("TARGETS", _ANY), ("RATE", _rate), ("COUNT", _whole(0, 10**9)),
             ("SIZE", _whole(4, 65507)), ("SPORT", _whole(1, 65535)), ("DPORT", _whole(1, 65535))),
    "cc-send": (("TRIAL", _whole(0, 0xFFFFFFFF)), ("SERVICE", _ANY), ("PORT", _whole(1, 65535)), ("RATE", _rate),
                ("REFS", _whole(0, 10**9)), ("TARGETS", _ANY), ("SRC_EID", _ANY), ("SIZE", _whole(4, 65507))),
    "recv": (("PORT", _whole(1, 65535)), ("STATUS", _ANY), ("READY", _ANY), ("STOP", _ANY)),
}


def parse_role(argv: list[str]) -> tuple[str, list[Any], list[str]]:
    """``ROLE ARGS... [OPTIONS]`` -> (role, converted positional arguments, the rest); ValueError with one line."""
    if not argv or argv[0] not in _ROLES:
        raise ValueError(f"ROLE must be one of {', '.join(_ROLES)}, got {argv[:1]}")
    spec = _ROLES[argv[0]]
    if len(argv) - 1 < len(spec):
        raise ValueError(f"{argv[0]} needs {' '.join(n for n, _ in spec)}")
    values = []
    for (name, check), text in zip(spec, argv[1:]):
        try:
            values.append(check(text))
        except ValueError as exc:
            raise ValueError(f"{argv[0]} {name} {text!r}: {exc}") from None
    return argv[0], values, argv[1 + len(spec):]


def main(argv: list[str]) -> int:
    """Dispatch a traffic role: ``send``, ``cc-send`` or ``recv`` (internal, see the module doc); a bad
    argument is one line on stderr and exit 2, before any socket is opened."""
    try:
        role, values, rest = parse_role(argv)
    except ValueError as exc:
        print(f"traffic: {exc}", file=sys.stderr)
        return 2
    if role == "send":
        trial, targets, rate, count, size, sport, dport = values
        print(json.dumps(role_send(trial, targets, rate, count, size, (sport, dport), rest[:1] == ["batch"])))
    elif role == "cc-send":
        from traffic_cc import role_cc_send
        mode = next((a[5:] for a in rest if a.startswith("mode=")), "corecast")
        print(json.dumps(role_cc_send(*values, "batch" in rest, mode)))
    else:
        port, status, ready, stop = values
        role_recv(port, status, ready, stop, rest[:1] == ["batch"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
