"""The ``corecast`` command line: run experiments, check topologies, inspect captures, clean up.

Every user error (unknown topology, malformed ``--set``, bad values) is one
line on stderr and exit status 2; a failed check or run exits 1; Ctrl-C 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Callable

from testbed.nodeutil import ConfigError

EPILOG = """examples:
  corecast check --set ases=20 --set clients=5
  corecast run demo
  corecast run gamma --set max_clients=1000 --keep-pcap
  corecast figures results/reference
  corecast model --set ases=70000 --set gamma=1,10,100 --set distribution=zipf
  corecast cli paper --set ases=2 --set clients=3
  corecast clean
"""


class UsageError(ConfigError):
    """A command-line mistake (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"corecast: {message} (see 'corecast --help')\n")


def _add_sets(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter (repeatable), e.g. --set ases=4 --set clients=10")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every verb (each has --help)."""
    parser = _Parser(prog="corecast", description="CoreCast testbed: live streaming by explicit multicast "
                     "over LISP, on emulated Autonomous Systems (Mininet).",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="run an experiment and write its run directory")
    p.add_argument("experiment", help="experiment name (see 'corecast list')")
    _add_sets(p)
    p.add_argument("--out", help="run directory (default results/EXPERIMENT/UTC-TIMESTAMP)")
    p.add_argument("--keep-pcap", action="store_true", help="keep the captures in the run's pcap/ directory "
                   "(pcapng, whole packets, a comment naming run, mode, node and interface)")
    p.add_argument("--live", action="store_true", help="show each stream while it runs: chunks delivered per AS, "
                   "bytes on the source uplink, the ITR's counters (in place on a terminal, lines in logs)")
    p.add_argument("--snaplen", type=int, default=None, metavar="N",
                   help="cut captured packets after N bytes (>= 64; default: whole packets with --keep-pcap)")
    p.add_argument("--servers", metavar="HOST1,HOST2", default=None,
                   help="spread whole ASes over these SSH servers with Mininet's cluster edition (docs/cluster.md)")

    p = sub.add_parser("figures", help="regenerate figures from stored results (no re-run)")
    p.add_argument("results_dir", nargs="?", default=None, help="a run directory or a tree of them "
                   "(default results/reference)")

    p = sub.add_parser("check", help="bring a topology up with LISP running, verify it, tear it down")
    p.add_argument("topology", nargs="?", default="paper")
    _add_sets(p)
    p.add_argument("--no-lisp", action="store_true", help="check the bare network only (no xTRs, no map-server)")
    p.add_argument("--out", help="run directory (default results/check/UTC-TIMESTAMP)")

    p = sub.add_parser("cli", help="the topology with every daemon running, in Mininet's CLI")
    p.add_argument("topology", nargs="?", default="paper")
    _add_sets(p)
    p.add_argument("--no-lisp", action="store_true", help="do not start the LISP daemons")

    p = sub.add_parser("clean", help="remove every leftover of a crashed run (ours only)")
    p.add_argument("--force", action="store_true", help="also stop a run that is still alive")
    sub.add_parser("list", help="topologies, experiments and delivery modes, one line each")

    p = sub.add_parser("lig", help="ask the mapping system for an EID, like the classic lig tool")
    p.add_argument("eid", nargs="?", help="EID to look up (optional with --probe)")
    p.add_argument("--resolver", default="172.17.0.2", help="Map-Resolver address (default %(default)s)")
    p.add_argument("--probe", metavar="RLOC", default=None, help="RLOC-probe this RLOC and show the round trip")
    p.add_argument("--source", default=None, help="local address to send from")
    p.add_argument("--timeout", type=float, default=2.0)
    p.add_argument("--count", type=int, default=1)

    p = sub.add_parser("decode", help="LISP/CoreCast-aware summary of a pcap")
    p.add_argument("pcap")
    p.add_argument("--detail", action="store_true", help="full scapy dissection of each packet")
    p.add_argument("--limit", type=int, default=None, help="print at most N packets")
    p.add_argument("--totals-only", action="store_true", help="only the totals per message type (fast)")
    p.add_argument("--tshark", action="store_true", help="show it through tshark with the CoreCast dissector")
    p.add_argument("-Y", dest="display_filter", default=None, help="with --tshark: a display filter")

    p = sub.add_parser("model", help="every mode's model up to 70,000 ASes and 10,000,000 clients (no packets): "
                       "table, model.csv, figure")
    _add_sets(p)
    p.add_argument("--csv", default=None, metavar="FILE", help="clients per AS (columns as,clients[,capable]; "
                   "docs/model.md) instead of ases/clients/gamma")
    p.add_argument("--out", help="output directory (default results/model/UTC-TIMESTAMP)")
    p.add_argument("--no-plot", action="store_true", help="table and model.csv only")

    p = sub.add_parser("stats", help="counters of a running (or finished) daemon")
    p.add_argument("node", help="daemon name, e.g. x0 or ms")
    p.add_argument("--run", default=None, help="run directory (default: the active or latest run)")
    return parser


def cmd_list(_args: argparse.Namespace) -> int:
    """Print topologies, experiments and delivery modes (``--set modes=``)."""
    from experiments import EXPERIMENTS
    from topologies.paper import TOPOLOGIES
    for name, cls in TOPOLOGIES.items():
        print(f"topology    {name:<13} {(cls.__doc__ or '').strip().splitlines()[0]}")
    for name, mod in EXPERIMENTS.items():
        print(f"experiment  {name:<13} {mod.DESCRIPTION}")
    from testbed.modes import MODES
    for name, mode in MODES.items():  # the values of --set modes=...
        print(f"mode        {name:<13} {mode.description}")
    return 0


def _topology(name: str) -> None:
    from topologies.paper import TOPOLOGIES
    if name not in TOPOLOGIES:
        raise UsageError(f"unknown topology '{name}' (choose: {', '.join(TOPOLOGIES)})")


def _servers_from_env() -> None:
    """A bad ``CORECAST_SERVERS`` (the way ``check`` and ``cli`` take servers) is a one-line error before
    anything waits for the testbed lock or builds a node; an unset or empty one means this machine only."""
    text = os.environ.get("CORECAST_SERVERS", "").strip()
    if text:
        from testbed.net.cluster import parse_servers
        parse_servers(text)


def cmd_check(args: argparse.Namespace) -> int:
    """Bring the topology up, print the reachability table, tear down."""
    from testbed.session import check_topology
    _topology(args.topology)
    _servers_from_env()
    return check_topology(args.sets, lisp=not args.no_lisp, out=args.out)


def cmd_cli(args: argparse.Namespace) -> int:
    """Mininet's CLI on a running topology."""
    from testbed.session import interactive
    _topology(args.topology)
    _servers_from_env()
    return interactive(args.sets, lisp=not args.no_lisp)


def cmd_run(args: argparse.Namespace) -> int:
    """Run an experiment."""
    from experiments import EXPERIMENTS
    from testbed.experiment import run_experiment
    if args.experiment not in EXPERIMENTS:
        raise UsageError(f"unknown experiment '{args.experiment}' (choose: {', '.join(EXPERIMENTS)})")
    if args.snaplen is not None:
        from testbed.net.capture import check_snaplen
        try:
            check_snaplen(args.snaplen)
        except ValueError as exc:
            raise UsageError(f"--snaplen: {exc}") from None
    if args.servers is not None:  # whole ASes per server (testbed.net.cluster); Testbed reads the variable
        from testbed.net.cluster import parse_servers
        os.environ["CORECAST_SERVERS"] = ",".join(parse_servers(args.servers))
    return run_experiment(args.experiment, args.sets, out=args.out, keep_pcap=args.keep_pcap, snaplen=args.snaplen,
                          live=args.live)


def cmd_figures(args: argparse.Namespace) -> int:
    """Regenerate figures."""
    from testbed.figures import figures_command
    return figures_command(args.results_dir)


def cmd_clean(args: argparse.Namespace) -> int:
    """Remove leftovers."""
    from testbed.net.clean import clean
    clean(force=args.force)
    return 0


def cmd_lig(args: argparse.Namespace) -> int:
    """lig."""
    from testbed.lig import lig_command
    return lig_command(args.eid, args.resolver, source=args.source, timeout=args.timeout, count=args.count,
                       probe=args.probe)


def cmd_decode(args: argparse.Namespace) -> int:
    """decode a pcap."""
    if args.tshark:
        from testbed.wireshark import tshark_decode
        return tshark_decode(args.pcap, detail=args.detail, limit=args.limit, display_filter=args.display_filter)
    from testbed.decode import decode_command
    return decode_command(args.pcap, detail=args.detail, limit=args.limit, totals_only=args.totals_only)


def cmd_model(args: argparse.Namespace) -> int:
    """The model at Internet scale."""
    from testbed.modelcli import model_command
    return model_command(args.sets, csv_path=args.csv, out=args.out, plot=not args.no_plot)


def cmd_stats(args: argparse.Namespace) -> int:
    """Print a daemon's status file."""
    from testbed.session import show_stats
    return show_stats(args.node, args.run)


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list, "check": cmd_check, "cli": cmd_cli, "run": cmd_run, "figures": cmd_figures,
    "clean": cmd_clean, "lig": cmd_lig, "decode": cmd_decode, "stats": cmd_stats,
    "model": cmd_model,
}
NEEDS_ROOT = {"check", "cli", "run", "clean"}


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``corecast`` console script."""
    args = build_parser().parse_args(argv)
    if args.verb in NEEDS_ROOT and os.geteuid() != 0:
        print(f"corecast: '{args.verb}' needs root (network namespaces): try sudo", file=sys.stderr)
        sys.exit(2)
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        code = VERBS[args.verb](args)
    except ConfigError as exc:
        print(f"corecast: {exc}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # the reader went away (`corecast decode F | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when stdout flushes
        code = 0
    except (RuntimeError, OSError) as exc:  # DaemonError, CaptureError, Busy, failed commands
        text = str(exc) or type(exc).__name__
        print(f"corecast: {text}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("corecast: interrupted; everything started was torn down", file=sys.stderr)
        code = 130
    sys.exit(code)
