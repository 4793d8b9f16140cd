"""Shared helpers of the namespace benchmarks (bench_topology, bench_xtr, bench_corecast).

* Result files: :func:`machine_info` and :func:`save_result` write
  ``docs/bench-results/NAME.json`` (numbers, date, machine, load).
* Scratch run directories under ``results/bench/`` (git-ignored).
* Kernel counters of a node (UDP socket-buffer drops, device queue drops),
  CPU seconds of the daemons, fresh status files of the xTRs.
* :class:`TrialRunner` (one paced trial: send, count deliveries, locate losses)
  and :func:`search_max_rate` (the highest offered rate with zero loss, by
  bisection over short trials); the senders and receivers are in ``traffic.py``.
* :func:`profile`: py-spy samples of the xTRs during one trial.

Traffic only ever goes to addresses inside the benchmark's own namespaces.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from testbed.measure import cpu_seconds  # noqa: E402,F401  (one implementation for runs and benches)

RESULTS_DIR = os.path.join(ROOT, "docs", "bench-results")
SCRATCH_DIR = os.path.join(ROOT, "results", "bench")
CHUNK_BYTES = 1316


# ------------------------------------------------------------------ bookkeeping


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or the machine type)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine_info() -> dict[str, Any]:
    """Date (UTC), CPUs, CPU model, kernel, Python and the load average when the bench started."""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "cpu_model": cpu_model(), "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_start": loadavg()}


# Keys that describe the machine or the run, not a measurement (see measured()).
CONTEXT_KEYS = frozenset({"machine", "bench", "date", "cpus", "cpu_model", "kernel", "python", "loadavg_start",
                          "loadavg_end", "load_after", "lock_wait_s", "lock_wait_seconds", "chunk_bytes"})


def measured(result: Any) -> bool:
    """True if ``result`` holds at least one finite number above 0 outside :data:`CONTEXT_KEYS` (bools do not
    count): a result of only zeros, empty lists and dicts is degenerate (``bench_lispmc.py --rounds 0`` wrote
    one over the committed lispmc.json)."""
    if isinstance(result, dict):
        return any(measured(v) for k, v in result.items() if k not in CONTEXT_KEYS)
    if isinstance(result, (list, tuple)):
        return any(measured(v) for v in result)
    return (isinstance(result, (int, float)) and not isinstance(result, bool)
            and result == result and 0 < result < float("inf"))


def save_result(name: str, result: dict[str, Any], is_measured: bool | None = None) -> str:
    """Write ``result`` (plus the load average at the end) to docs/bench-results/NAME.json; return the path.

    A degenerate result (``is_measured`` False, or by default not :func:`measured`) never overwrites the
    committed file: it goes to results/bench/NAME-nothing-measured.json and a one-line warning to stderr."""
    from testbed.nodeutil import write_json_atomic
    result = dict(result, loadavg_end=loadavg())
    if not (measured(result) if is_measured is None else is_measured):
        os.makedirs(SCRATCH_DIR, exist_ok=True)
        path = os.path.join(SCRATCH_DIR, f"{name}-nothing-measured.json")
        print(f"nothing was measured: {RESULTS_DIR}/{name}.json left as it is", file=sys.stderr)
    else:
        os.makedirs(RESULTS_DIR, exist_ok=True)
        path = os.path.join(RESULTS_DIR, f"{name}.json")
    write_json_atomic(path, result)
    return path


def scratch_rundir(name: str) -> str:
    """A fresh run directory ``results/bench/NAME-<UTC time>`` for logs, configs and status files."""
    path = os.path.join(SCRATCH_DIR, f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.makedirs(path, exist_ok=True)
    return path


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def need_root() -> bool:
    """True if running as root; otherwise print why the bench cannot run."""
    if os.geteuid() != 0:
        print("this benchmark builds network namespaces: run it as root (sudo make bench)", file=sys.stderr)
        return False
    return True


def lock_env() -> None:
    """Wait for the machine-wide testbed lock instead of failing (20 min unless set)."""
    os.environ.setdefault("CORECAST_LOCK_WAIT", "1200")


def take_lock() -> float:
    """Take the machine-wide testbed lock now (Testbed.start then finds it held); return seconds waited.

    Timings start after this, so time spent waiting for another agent's network is not counted.
    Testbed.stop releases the lock.
    """
    from testbed.net import registry
    lock_env()
    t0 = time.monotonic()
    registry.acquire_lock()
    waited = time.monotonic() - t0
    if waited > 1:
        print(f"(waited {waited:.0f} s for the testbed lock)", flush=True)
    return waited


def lock_is_free() -> float:
    """Wait until the testbed lock is free and release it at once (for timing a CLI run); return seconds waited."""
    from testbed.net import registry
    waited = take_lock()
    registry.release_lock()
    return waited


def overload_rates(trial: dict[str, Any], itr_key: str, etr_key: str) -> dict[str, int]:
    """Per-second rates of an ITR and an ETR status counter during an overloaded (unpaced) trial."""
    got = {}
    for name, key in (("x0", itr_key), ("x1", etr_key)):
        value = trial.get("xtr_counters", {}).get(name, {}).get(key)
        if value is not None and trial.get("seconds"):
            got[f"{name} {key}"] = round(value / trial["seconds"])
    return got


def read_json(path: str) -> dict:
    """A JSON file's content, or {} if missing or half-written."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``pred`` until true; RuntimeError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ------------------------------------------------------------------ kernel counters inside a node


def udp_snmp(node: Any) -> dict[str, int]:
    """The node's ``Udp:`` counters from /proc/net/snmp (its own network namespace)."""
    lines = [ln.split() for ln in node.cmd("cat /proc/net/snmp").splitlines() if ln.startswith("Udp:")]
    if len(lines) < 2:
        return {}
    return {k: int(v) for k, v in zip(lines[0][1:], lines[1][1:])}


def link_stats(node: Any, dev: str) -> dict[str, int]:
    """rx/tx packets and drops of ``dev`` inside ``node`` (``ip -s -j link``)."""
    try:
        data = json.loads(node.cmd(f"ip -s -j link show dev {dev}"))[0]["stats64"]
    except (ValueError, IndexError, KeyError):
        return {}
    return {"rx_packets": data["rx"]["packets"], "rx_dropped": data["rx"]["dropped"],
            "tx_packets": data["tx"]["packets"], "tx_dropped": data["tx"]["dropped"]}


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """Per-key difference of two counter dicts (keys of ``after``)."""
    return {k: v - before.get(k, 0) for k, v in after.items()}


# ------------------------------------------------------------------ trials


def fresh_status(path: str, newer_than: float, timeout: float = 4.0) -> dict:
    """A daemon's status file once written after wall time ``newer_than`` (xTRs write one a second)."""
    deadline = time.monotonic() + timeout
    while True:
        data = read_json(path)
        if data.get("time", 0) > newer_than or time.monotonic() > deadline:
            return data
        time.sleep(0.05)


def pick(status: dict, keys: list[tuple[str, str]]) -> dict[str, int]:
    """``{"section.key": value}`` for the given (section, key) pairs of a status dict."""
    return {f"{sec}.{key}": int(status.get(sec, {}).get(key, 0)) for sec, key in keys}


def arrived(now: dict[str, int], before: dict[str, int]) -> int:
    """Datagrams that reached a host's UDP layer between two ``udp_snmp`` readings (queued or dropped full)."""
    return sum(now.get(k, 0) - before.get(k, 0) for k in ("InDatagrams", "RcvbufErrors"))


def settle(count: Callable[[], int], expected: int, quiet: float = 0.5, limit: float = 15.0,
           poll: float = 0.1) -> int:
    """Poll ``count()`` until it reaches ``expected`` or has not changed for ``quiet`` seconds; return it.

    After a sender stops, packets still queued in the xTRs keep arriving for a while:
    a trial is judged only once its counts have settled.
    """
    return settle_at(count, expected, quiet, limit, poll)[0]


def settle_at(count: Callable[[], int], expected: int, quiet: float = 0.5, limit: float = 15.0,
              poll: float = 0.1) -> tuple[int, float]:
    """:func:`settle`, also returning when (``time.monotonic()``) the count last grew (to within ``poll`` s)."""
    deadline = time.monotonic() + limit
    last, since = -1, time.monotonic()
    while True:
        got = count()
        now = time.monotonic()
        if got >= expected or now > deadline:
            return got, now if got != last else since
        if got != last:
            last, since = got, now
        elif now - since >= quiet:
            return got, since
        time.sleep(poll)


class TrialRunner:
    """Paced trials over one path: send, count what reaches the destination host, locate losses.

    ``send(trial, rate, count)`` runs the sender(s) and returns ``traffic.merge_sends``' dict;
    ``rx`` is a ``traffic.Receiver`` in ``dst_host``;
    ``count`` is in the sender's unit (datagrams or REFs). A datagram is *delivered* once it
    reaches ``dst_host``'s UDP layer (``InDatagrams + RcvbufErrors`` of its namespace);
    the receiver's own count is recorded beside. ``udp_watch`` nodes' UDP socket-buffer
    drops and ``tun_watch`` (node, device) queue drops say where losses happened;
    ``xtrs`` (name -> Daemon) get their CPU share and, with ``status_keys``
    (name -> [(section, key)]), per-trial deltas of their status counters; those named
    in ``drop_keys`` ("section.key") are drops and join the trial's ``lost_at``.
    Each trial also records ``drain_seconds`` (from the sender's end until the last
    delivery, to within 0.05 s) and ``delivery_rate`` (delivered / (sending time +
    drain)); ``by_delivery`` makes that the trial's ``achieved`` rate when lower (REF
    lists: a few queued messages hold thousands of deliveries, so the sender's rate
    says little about the path's).
    """

    def __init__(self, name: str, tb: Any, rx: Any, dst_host: str,
                 send: Callable[[int, float, int], dict[str, Any]], seconds: float, first_trial: int,
                 unpaced_rate: float = 250_000, udp_watch: tuple[str, ...] = (),
                 tun_watch: tuple[tuple[str, str], ...] = (), xtrs: dict[str, Any] | None = None,
                 rundir: str | None = None, status_keys: dict[str, list[tuple[str, str]]] | None = None,
                 drop_keys: frozenset[str] = frozenset(), by_delivery: bool = False) -> None:
        self.name, self.tb, self.rx, self.dst_host, self.send = name, tb, rx, dst_host, send
        self.seconds, self.next_trial, self.unpaced_rate = seconds, first_trial, unpaced_rate
        self.udp_watch, self.tun_watch = udp_watch, tun_watch
        self.xtrs, self.rundir, self.status_keys = xtrs or {}, rundir, status_keys or {}
        self.drop_keys = drop_keys
        self.by_delivery = by_delivery
        self._status: dict[str, dict[str, int]] | None = None

    def _statuses(self, newer_than: float) -> dict[str, dict[str, int]]:
        assert self.rundir is not None
        return {n: pick(fresh_status(os.path.join(self.rundir, "state", f"{n}.status.json"), newer_than), keys)
                for n, keys in self.status_keys.items()}

    def counters(self) -> dict[str, Any]:
        """Kernel drop counters and xTR CPU seconds, now."""
        out: dict[str, Any] = {"udp": {n: udp_snmp(self.tb.node(n)) for n in {*self.udp_watch, self.dst_host}},
                               "tun": {f"{n}:{dev}": link_stats(self.tb.node(n), dev) for n, dev in self.tun_watch},
                               "cpu": {n: cpu_seconds(d.proc.pid) for n, d in self.xtrs.items()}}
        return out

    def trial(self, rate: float) -> dict[str, Any]:
        """One trial at ``rate`` per second (0: as fast as the sender goes) for about ``seconds``."""
        trial = self.next_trial
        self.next_trial += 1
        count = int((rate or self.unpaced_rate) * self.seconds)
        if self.status_keys and self._status is None:
            self._status = self._statuses(time.time())
        before = self.counters()
        sent = self.send(trial, rate, count)
        sent_at = time.monotonic()
        dst0 = before["udp"][self.dst_host]
        _n, last_at = settle_at(lambda: arrived(udp_snmp(self.tb.node(self.dst_host)), dst0), sent["sent"],
                                poll=0.05)
        got = self.rx.settled(trial, sent["sent"])
        after = self.counters()
        dst1 = after["udp"][self.dst_host]
        delivered = arrived(dst1, dst0)
        h_drop = dst1.get("RcvbufErrors", 0) - dst0.get("RcvbufErrors", 0)
        res: dict[str, Any] = {
            "trial": trial, "offered": rate, "achieved": round(sent["achieved"]), "sent": sent["sent"],
            "delivered": delivered, "lost": sent["sent"] - delivered, "received_by_app": got,
            "receiver_dropped": h_drop, "send_errors": sent["send_errors"], "seconds": round(sent["seconds"], 3),
            "senders": sent.get("senders", 1), "drain_seconds": round(max(0.0, last_at - sent_at), 3)}
        res["delivery_rate"] = round(delivered / (sent["seconds"] + res["drain_seconds"]))
        if self.by_delivery:  # deliveries per second: the sender's rate is not the path's when queues hold a lot
            res["sender_achieved"], res["achieved"] = res["achieved"], min(res["achieved"], res["delivery_rate"])
        if "data_sent" in sent:
            res["data_sent"] = sent["data_sent"]
        res["ok"] = res["lost"] == 0 and sent["send_errors"] == 0
        where = {f"{n}_udp_rcvbuf": after["udp"][n].get("RcvbufErrors", 0) - before["udp"][n].get("RcvbufErrors", 0)
                 for n in self.udp_watch}
        where.update({f"{k}_queue": after["tun"][k].get("tx_dropped", 0) - before["tun"][k].get("tx_dropped", 0)
                      for k in after["tun"]})
        res["lost_at"] = {k: v for k, v in where.items() if v}
        if self.xtrs:
            res["xtr_cpu_percent"] = {n: round(100 * (after["cpu"][n] - before["cpu"][n]) / sent["seconds"])
                                      for n in self.xtrs}  # CPU while sending (and a little after)
        if self.status_keys:
            now_status = self._statuses(time.time())
            res["xtr_counters"] = {n: delta(now_status[n], self._status[n]) for n in now_status}
            self._status = now_status
            res["lost_at"].update({f"{n} {k}": v for n, c in res["xtr_counters"].items() for k, v in c.items()
                                   if v and k in self.drop_keys})
        app = f" (receiver socket dropped {h_drop:,})" if h_drop else ""
        cpu = f" cpu% {res['xtr_cpu_percent']}" if self.xtrs else ""
        print(f"  {self.name:<8} trial {trial}: offered {round(rate) or 'max':>7}/s, achieved {res['achieved']:>7,}/s,"
              f" lost {res['lost']:>7,} {res['lost_at'] or ''}{app}{cpu}", flush=True)
        return res

    def search(self, start: float, max_trials: int) -> dict[str, Any]:
        """:func:`search_max_rate` over this path: the best zero-loss trial and every trial."""
        best, trials = search_max_rate(self.trial, start, 1e9, max_trials)
        return {"best": best, "rate": best["achieved"] if best else 0,
                "sender_limited": bool(best is not None and best["offered"] == 0), "trials": trials}


def profile(xtrs: dict[str, Any], runner: "TrialRunner", rate: float, rundir: str) -> dict[str, Any]:
    """Sample both xTRs with py-spy during one trial at ``rate``; return their top lines by own time."""
    import shutil
    import subprocess
    pyspy = shutil.which("py-spy", path=os.path.dirname(sys.executable)) or shutil.which("py-spy")
    if not pyspy:
        print("  --profile: py-spy not found (.venv/bin/python -m pip install py-spy)")
        return {}
    procs = {}
    for name, d in xtrs.items():
        out = os.path.join(rundir, f"{name}.pyspy.txt")
        procs[name] = (out, subprocess.Popen([pyspy, "record", "--pid", str(d.proc.pid), "--duration",
                                              str(int(runner.seconds) + 1), "--rate", "500", "--format", "raw",
                                              "--nonblocking", "-o", out], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL))
    result: dict[str, Any] = {"trial": runner.trial(rate)}
    for name, (out, proc) in procs.items():
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        result[name] = top_lines(out)
        print(f"  py-spy {name}: " + ", ".join(f"{fn} {pct}%" for fn, pct in result[name][:8]))
    return result


def top_lines(raw_path: str, n: int = 15) -> list[tuple[str, float]]:
    """Own-time share of the innermost frames (function, file:line) in a py-spy raw file."""
    own: dict[str, int] = {}
    total = 0
    try:
        with open(raw_path) as fh:
            for line in fh:
                stack, _, count = line.rstrip().rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                leaf = stack.split(";")[-1]
                own[leaf] = own.get(leaf, 0) + int(count)
                total += int(count)
    except OSError:
        return []
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [(fn, round(100 * c / total, 1)) for fn, c in ranked]


# ------------------------------------------------------------------ rate search


def search_max_rate(trial: Callable[[float], dict[str, Any]], start: float, ceiling: float,
                    max_trials: int = 8, precision: float = 0.04) -> tuple[dict[str, Any] | None, list[dict]]:
    """Find the highest rate with zero loss by bisection; return (best trial, all trials).

    ``trial(rate)`` runs one paced trial (rate 0 = unpaced) and returns a dict with
    at least ``ok`` (no loss) and ``achieved`` (the rate the sender really reached).
    First an unpaced trial: if it loses nothing, the path is faster than the sender
    and that trial is the answer. Otherwise bisect between ``start`` and the
    unpaced rate (capped at ``ceiling``) until the bracket is within ``precision``
    or ``max_trials`` trials have run. A paced trial whose sender fell short of
    its offered rate by more than 3 % counts as that shortfall, not as the rate.
    """
    trials: list[dict[str, Any]] = []
    first = trial(0)
    trials.append(first)
    if first["ok"]:
        return first, trials
    good: dict[str, Any] | None = None
    lo, hi = 0.0, min(ceiling, first["achieved"])
    rate = min(start, hi * 0.9)
    while len(trials) < max_trials:
        res = trial(rate)
        trials.append(res)
        short = res["achieved"] < 0.97 * rate
        if res["ok"] and not short:
            if good is None or res["achieved"] > good["achieved"]:
                good = res
            lo = rate
        else:
            hi = min(hi, rate if not short else res["achieved"])
            if res["ok"] and (good is None or res["achieved"] > good["achieved"]):
                good = res
        if lo and (hi - lo) / hi <= precision:
            break
        rate = (lo + hi) / 2 if lo else rate / 2
    return good, trials


def meets(best: dict[str, Any] | None, target: float) -> bool:
    """True if the best zero-loss trial reached ``target`` per second.

    A trial offered at (or above) the target counts even if the pacer fell short of
    its offered rate by less than 0.1 % (e.g. 99,996/s achieved for 100,000/s offered).
    """
    if best is None:
        return False
    return best["achieved"] >= target or (best["offered"] >= target and best["achieved"] >= 0.999 * best["offered"])
