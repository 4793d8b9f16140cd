"""An sshd for the cluster tests (not a test module): loopback only, its own keys, started and stopped by the test.

``LoopbackSshd(tmpdir)``: host key and client key made in ``tmpdir``, ``sshd -D`` listening on
127.0.0.1 and 127.0.0.2 on a free private port, ``PermitRootLogin prohibit-password``, no PAM,
no password, ``PermitTunnel ethernet`` (the cluster edition's SSH tunnels); an ``ssh_config``
for the client (``CORECAST_SSH_CONFIG``) trusting exactly that host key. No system sshd
service is touched; ``stop()`` kills the daemon and every session it forked.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

SERVERS = ("127.0.0.1", "127.0.0.2")


def _free_port() -> int:
    """A TCP port outside the ephemeral range (tests/ports.py): the cluster run's ssh clients take
    ephemeral ports, and one could have been handed the port between this pick and sshd's bind."""
    from ports import free_port
    return free_port()


class LoopbackSshd:
    """sshd on two loopback "servers" for one test."""

    def __init__(self, tmpdir: str) -> None:
        self.dir = tmpdir
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.ssh_config = os.path.join(tmpdir, "ssh_config")

    def start(self, timeout: float = 30.0) -> "LoopbackSshd":
        d = self.dir
        for key in ("hostkey", "id"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, key)], check=True)
        shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
        with open(os.path.join(d, "hostkey.pub")) as fh:
            kind, key = fh.read().split()[:2]
        with open(os.path.join(d, "known_hosts"), "w") as fh:
            fh.write(",".join(f"[{s}]:{self.port}" for s in SERVERS) + f" {kind} {key}\n")
        with open(os.path.join(d, "sshd_config"), "w") as fh:
            fh.write("".join(f"ListenAddress {s}:{self.port}\n" for s in SERVERS) + f"""HostKey {d}/hostkey
PidFile {d}/sshd.pid
AuthorizedKeysFile {d}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PermitTunnel ethernet
MaxStartups 200:30:400
MaxSessions 500
LogLevel ERROR
""")
        with open(self.ssh_config, "w") as fh:
            fh.write(f"""Host {' '.join(SERVERS)}
  Port {self.port}
  User root
  IdentityFile {d}/id
  IdentitiesOnly yes
  UserKnownHostsFile {d}/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
""")
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        self.proc = subprocess.Popen([shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f",
                                      os.path.join(d, "sshd_config")], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "sshd.log"), "wb"), start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:  # ready when both addresses accept a login
            ok = all(subprocess.run(["ssh", "-F", self.ssh_config, s, "true"], capture_output=True,
                                    timeout=timeout).returncode == 0 for s in SERVERS)
            if ok:
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                with open(os.path.join(d, "sshd.log")) as fh:
                    raise RuntimeError(f"test sshd did not start: {fh.read()[-300:]}")
            time.sleep(0.2)

    def session_pids(self) -> list[int]:
        """Sessions of our sshd: processes (other than sshd itself) that name its config or that it forked."""
        conf = os.path.join(self.dir, "sshd_config").encode()
        mine = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    cmd = fh.read()
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if self.proc is not None and int(name) == self.proc.pid:
                continue
            if conf in cmd or (self.proc is not None and ppid == self.proc.pid):
                mine.append(int(name))
        return mine

    def stop(self) -> None:
        """Kill sshd and its sessions (its process group, then any session left)."""
        if self.proc is None:
            return
        pids = self.session_pids() + [self.proc.pid]
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(10)
        self.proc = None
