"""What the cluster edition's SSH Ethernet tunnel adds on the servers' own network (docs/cluster.md).

``sudo .venv/bin/python bench/bench_cluster_tunnel.py [--count N]``

Starts the loopback sshd of the tests (tests/sshd_loopback.py), builds one tunnel exactly as
:class:`testbed.net.cluster.ClusterLink` does (two taps, ``ssh -o Tunnel=ethernet -w A:B``, each
tap moved into its own network namespace), then for several IP packet sizes sends N pings with
DF set and reads the tunnel's TCP connection (``ss -tin``: ``bytes_acked``, ``segs_out``) before
and after: SSH/TCP payload bytes per tunnelled frame, and which sizes pass (the MTU the emulated
link keeps). Nothing leaves the machine; everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from bench import args as bench_args  # noqa: E402


def _ss(port: int) -> tuple[int, int]:
    """(bytes_acked, segs_out) of the client side of the SSH connection to 127.0.0.2:port."""
    out = subprocess.run(["ss", "-tinH", "dst", f"127.0.0.2:{port}"], capture_output=True, text=True).stdout
    acked = re.search(r"bytes_acked:(\d+)", out)
    segs = re.search(r"segs_out:(\d+)", out)
    return (int(acked.group(1)) if acked else 0, int(segs.group(1)) if segs else 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=bench_args.count(1, 100_000), default=200, help="pings per frame size (1..100000)")
    args = ap.parse_args()
    from sshd_loopback import LoopbackSshd
    tmp = tempfile.mkdtemp(prefix="cc-tunnel-")
    sshd = LoopbackSshd(tmp).start()
    ns = [subprocess.Popen(["unshare", "-n", "sleep", "600"]) for _ in range(2)]
    taps = ("tap7998", "tap7999")
    tunnel = None
    try:
        time.sleep(0.2)
        for t in taps:
            subprocess.run(["ip", "tuntap", "add", "dev", t, "mode", "tap"], check=True)
        tunnel = subprocess.Popen(["ssh", "-F", sshd.ssh_config, "-n", "-o", "Tunnel=ethernet", "-w", "7998:7999",
                                   "127.0.0.2", "echo @"], stdout=subprocess.PIPE)
        assert tunnel.stdout.read(1) == b"@", "tunnel did not come up"
        for i, (t, p) in enumerate(zip(taps, ns)):
            subprocess.run(["ip", "link", "set", t, "up", "netns", str(p.pid)], check=True)
            sh = f"ip link set lo up; ip link set {t} up; ip addr add 10.99.0.{i + 1}/24 dev {t}"
            subprocess.run(["nsenter", "-t", str(p.pid), "-n", "sh", "-c", sh], check=True)
        ping = ["nsenter", "-t", str(ns[0].pid), "-n", "ping", "-q", "-M", "do", "-i", "0.002", "-W", "1"]
        subprocess.run([*ping, "-c", "3", "10.99.0.2"], capture_output=True)  # ARP, warm
        print(f"{'IP bytes':>9} {'passes':>7} {'TCP payload/frame':>18} {'TCP segments/frame':>19}")
        for size in (84, 1108, 1344, 1380, 1500, 1501):
            b0, s0 = _ss(sshd.port)
            res = subprocess.run([*ping, "-c", str(args.count), "-s", str(size - 28), "10.99.0.2"],
                                 capture_output=True, text=True)
            time.sleep(0.3)
            b1, s1 = _ss(sshd.port)
            ok = f" {args.count} received" in res.stdout
            per = (b1 - b0) / args.count if ok else float("nan")
            print(f"{size:>9} {'yes' if ok else 'no':>7} {per:>18.1f} {(s1 - s0) / args.count:>19.2f}")
    finally:
        if tunnel is not None:
            tunnel.terminate()
            tunnel.wait(10)
        for p in ns:
            p.kill()
            p.wait()
        for t in taps:
            subprocess.run(["ip", "link", "del", t], capture_output=True)
        sshd.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
