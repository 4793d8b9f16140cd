"""FRR (Debian's ``frr``: zebra and ospfd) routing the RLOC block in a tree core.

Each core router (the root ``core`` and the transit routers ``t<k>``, see
:mod:`testbed.addressing`) runs its own zebra and ospfd inside its Mininet node,
each a :class:`FrrDaemon` like our other daemons: its configuration rendered into
the run directory (``config/frr/<router>/<daemon>.conf``, checked with FRR's own
``--dryrun`` before start), its output in ``logs/<router>-<daemon>.log``. FRR
drops privileges to its ``frr`` user (Debian's build insists that the user be in
``frrvty``, which root is not), so each router gets a private runtime directory
``/tmp/corecast-frr-<router>-*`` owned by ``frr`` holding a copy of its
configurations, its sockets (zserv, vty) and pid files: routers of one machine
never share FRR's default paths, and no ``/etc/frr`` or ``/var/run/frr`` is
touched. The directory is removed when the testbed process exits.

OSPF (RFC 2328) runs on the root-transit links only, as point-to-point networks
(no designated-router election and its 40 s wait) with 1 s hellos and no
LSA throttling (RFC 2328's MinLSInterval of 5 s would add two 5 s rounds to
convergence; our core is small and static); every other
interface in the RLOC block is advertised passively. :func:`wait_converged`
returns once FRR's own state says so: every expected adjacency ``Full``
(``vtysh -c 'show ip ospf neighbor json'``) and every RLOC subnet in each core
router's kernel routing table. Never a sleep; every wait has a deadline.
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from typing import Any

from testbed.net.daemon import Daemon, DaemonError
from testbed.nodeutil import write_json_atomic

FRR_DIR = "/usr/lib/frr"
VTYSH = "vtysh"
FRR_USER = "frr"
"""The user FRR's daemons run as (Debian's package creates it, in group frrvty)."""


class FrrError(RuntimeError):
    """FRR is missing, its configuration is refused, or the core did not converge in time (one line)."""


def router_ids(plan: Any) -> dict[str, str]:
    """OSPF router ID of every core router: the root 172.18.0.1, each transit router its address towards the root."""
    return {plan.core: "172.18.0.1", **{t.name: t.ip for t in plan.transit}}


def ospf_links(plan: Any) -> dict[str, list[str]]:
    """Per core router, its interfaces that run OSPF (the root-transit links)."""
    out: dict[str, list[str]] = {plan.core: [f"{plan.core}-{t.name}" for t in plan.transit]}
    for t in plan.transit:
        out[t.name] = [t.root_if]
    return out


def zebra_conf(router: str) -> str:
    """zebra's configuration: the name only (addresses come from Mininet)."""
    return f"hostname {router}\n!\n"


def ospfd_conf(router: str, router_id: str, ospf_ifs: list[str], rloc_block: str) -> str:
    """ospfd's configuration: point-to-point OSPF on ``ospf_ifs``, everything in ``rloc_block`` advertised."""
    lines = [f"hostname {router}", "!"]
    for intf in ospf_ifs:
        lines += [f"interface {intf}", " ip ospf network point-to-point", " ip ospf hello-interval 1",
                  " ip ospf dead-interval 4", " no ip ospf passive", "!"]
    lines += ["router ospf", f" ospf router-id {router_id}", " timers throttle spf 0 50 500",
              " timers throttle lsa all 0", " timers lsa min-arrival 0",
              " passive-interface default", f" network {rloc_block} area 0", "!"]
    return "\n".join(lines) + "\n"


class FrrDaemon(Daemon):
    """One FRR daemon (``zebra`` or ``ospfd``) of one router, in the router's node, in the foreground."""

    def __init__(self, node: Any, router: str, daemon: str, rundir: str, sockdir: str, conf_text: str) -> None:
        super().__init__(node, f"{router}-{daemon}", rundir, {})
        self.program = daemon
        self.router = router
        self.sockdir = sockdir
        self.conf_text = conf_text
        self.conf_path = os.path.join(rundir, "config", "frr", router, f"{daemon}.conf")
        self.run_conf = os.path.join(sockdir, f"{daemon}.conf")
        """The copy FRR reads (the ``frr`` user may not traverse the run directory)."""

    def after_stop(self) -> None:
        """Remove the router's private runtime directory (its other FRR daemons stop in the same call)."""
        shutil.rmtree(self.sockdir, ignore_errors=True)

    @property
    def binary(self) -> str:
        """The daemon's executable."""
        return os.path.join(FRR_DIR, self.program)

    def _args(self) -> list[str]:
        return [self.binary, "-f", self.run_conf, "-i", os.path.join(self.sockdir, f"{self.program}.pid"),
                "-z", os.path.join(self.sockdir, "zserv.api"), "--vty_socket", self.sockdir, "-P", "0",
                "--log", "stdout"]

    def render(self) -> str:
        """Write the FRR configuration (and the usual JSON record of it) into the run directory."""
        super().render()
        os.makedirs(os.path.dirname(self.conf_path), exist_ok=True)
        for path in (self.conf_path, self.run_conf):
            with open(path, "w") as fh:
                fh.write(self.conf_text)
        shutil.chown(self.run_conf, FRR_USER, FRR_USER)
        return self.conf_path

    def dry_run(self) -> None:
        """FRR's own check of the configuration (``--dryrun``); FrrError with its first complaint.

        FRR exits 0 even when a line is refused ("No such command on config line N"), so its
        output is read too.
        """
        if not os.access(self.binary, os.X_OK):
            raise FrrError(f"{self.binary} not found: install Debian's frr package (scripts/setup.sh)")
        try:
            res = subprocess.run([*self._args(), "-C"], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            raise FrrError(f"{self.name}: FRR's configuration check did not finish within 30 s") from None
        text = (res.stdout or "") + (res.stderr or "")
        bad = [line.split("] ", 1)[-1] for line in text.splitlines() if "config line" in line]
        if res.returncode or bad:  # FRR exits 0 on a line it cannot parse, and says so
            lines = bad or text.strip().splitlines()
            raise FrrError(f"{self.name}: FRR refused {self.conf_path}: "
                           f"{lines[0] if lines else 'exit status ' + str(res.returncode)}")

    def command(self) -> list[str]:
        """The daemon in the foreground, logging to stdout (the log file)."""
        return self._args()

    def is_ready(self) -> bool:
        """True once the daemon listens on its vty socket; DaemonError if it died."""
        if os.path.exists(os.path.join(self.sockdir, f"{self.program}.vty")):
            return True
        if not self.alive():
            raise self.died_error()
        return False


def socket_dir(router: str) -> str:
    """A private runtime directory for one router's FRR (owned by ``frr``; removed when its daemons stop,
    :meth:`FrrDaemon.after_stop`, and at the latest when this process exits)."""
    try:
        pwd.getpwnam(FRR_USER)
    except KeyError:
        raise FrrError(f"no '{FRR_USER}' user: install Debian's frr package (scripts/setup.sh)") from None
    path = tempfile.mkdtemp(prefix=f"corecast-frr-{router}-")
    shutil.chown(path, FRR_USER, FRR_USER)
    atexit.register(shutil.rmtree, path, True)
    return path


def frr_daemons(tb: Any, plan: Any, rundir: str) -> list[FrrDaemon]:
    """zebra then ospfd for every core router of a tree core (empty list for a star)."""
    if not plan.transit:
        return []
    ids, links = router_ids(plan), ospf_links(plan)
    out = []
    for router in [plan.core, *(t.name for t in plan.transit)]:
        sockdir = socket_dir(router)
        node = tb.node(router)
        out.append(FrrDaemon(node, router, "zebra", rundir, sockdir, zebra_conf(router)))
        out.append(FrrDaemon(node, router, "ospfd", rundir, sockdir,
                             ospfd_conf(router, ids[router], links[router], plan.rloc_block)))
    return out


def vtysh(sockdir: str, command: str, timeout: float = 10.0) -> str:
    """Run one vtysh command against the daemons whose sockets are in ``sockdir``; FrrError on failure."""
    try:
        res = subprocess.run([VTYSH, "--vty_socket", sockdir, "-c", command], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FrrError(f"vtysh '{command}' did not answer within {timeout:g} s") from None
    if res.returncode:
        raise FrrError(f"vtysh '{command}' failed: {(res.stderr or res.stdout).strip()[:200]}")
    return res.stdout


def full_neighbors(text: str) -> set[str]:
    """Router IDs of the ``Full`` adjacencies in ``show ip ospf neighbor json``."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return set()
    out = set()
    for rid, entries in (data.get("neighbors") or {}).items():
        for entry in entries if isinstance(entries, list) else [entries]:
            state = str(entry.get("nbrState") or entry.get("state") or "")
            if state.startswith("Full"):
                out.add(rid)
    return out


def expected_subnets(plan: Any) -> set[str]:
    """Every RLOC subnet a core router must reach: AS links, transit links, the mapping host's link."""
    nets = {a.link_prefix for a in plan.all_ases}  # the plan's subnets (testbed.addressing)
    nets |= {t.link_prefix for t in plan.transit}
    nets.add(plan.ms_link)
    return nets


def kernel_routes(node: Any, timeout: float = 10.0) -> set[str]:
    """IPv4 destinations in a node's main routing table (``ip -j route``, through popen with a deadline)."""
    proc = node.popen(["ip", "-j", "-4", "route", "show"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      stdin=subprocess.DEVNULL, text=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise FrrError(f"{getattr(node, 'name', node)}: 'ip route' did not finish within {timeout:g} s") from None
    try:
        return {r["dst"] for r in json.loads(out or "[]")}
    except (ValueError, KeyError, TypeError):
        return set()


def wait_converged(tb: Any, plan: Any, daemons: list[FrrDaemon], timeout: float = 30.0) -> float:
    """Wait until every OSPF adjacency is Full and every core router routes every RLOC subnet; return the seconds.

    FrrError naming the first router that lags (and what it lacks) at the deadline.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    ids = router_ids(plan)
    sockdirs = {d.router: d.sockdir for d in daemons}
    want_nbrs = {plan.core: {ids[t.name] for t in plan.transit}, **{t.name: {ids[plan.core]} for t in plan.transit}}
    want_nets = expected_subnets(plan)
    pending = dict.fromkeys(sockdirs, "not checked yet")
    while True:
        for router in list(pending):
            for d in daemons:
                if d.router == router and not d.alive():
                    raise DaemonError(f"{d.name} died while the core converged; see {d.log_path}")
            nbrs = full_neighbors(vtysh(sockdirs[router], "show ip ospf neighbor json"))
            if not want_nbrs[router] <= nbrs:
                pending[router] = f"OSPF adjacencies Full: {sorted(nbrs)} of {sorted(want_nbrs[router])}"
                continue
            missing = want_nets - kernel_routes(tb.node(router))
            if missing:
                pending[router] = f"{len(missing)} RLOC subnets not routed, e.g. {sorted(missing)[0]}"
                continue
            del pending[router]
        if not pending:
            return time.monotonic() - t0
        if time.monotonic() > deadline:
            router, why = next(iter(pending.items()))
            raise FrrError(f"core not converged after {timeout:g} s: {router}: {why}")
        time.sleep(0.2)


def start_routing(tb: Any, plan: Any, rundir: str, timeout: float = 30.0) -> list[FrrDaemon]:
    """Start FRR on every core router of a tree core and wait until OSPF has converged (nothing for a star)."""
    daemons = frr_daemons(tb, plan, rundir)
    if not daemons:
        return []
    zebras = [d for d in daemons if d.program == "zebra"]
    tb.start_daemons(zebras, timeout=timeout)
    tb.start_daemons([d for d in daemons if d.program == "ospfd"], timeout=timeout)
    seconds = wait_converged(tb, plan, daemons, timeout)
    write_json_atomic(os.path.join(rundir, "state", "frr.json"),
                      {"routers": sorted({d.router for d in daemons}), "converged_s": round(seconds, 3),
                       "sockets": {d.router: d.sockdir for d in daemons}})
    return daemons
