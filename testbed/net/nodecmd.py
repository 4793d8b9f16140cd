"""Commands inside Mininet nodes, each with a deadline and a bounded length.

Two ways to run something in a node, and the rule for each:

* :func:`run_in_node` (preferred): ``node.popen(argv)`` (``mnexec -a PID``), so the
  arguments go through ``execve`` and may be long (a list of 1,000 targets is fine);
  output is collected with a deadline, and on timeout (or Ctrl-C) the whole process
  group is killed and :class:`NodeCommandError` says what did not finish, in one line.
* ``node.cmd(text)`` writes ``text`` into the node's shell through a pseudo-terminal,
  which cuts a line at 4,095 bytes (canonical mode): the shell then never prints the
  end marker and Mininet's read would wait for ever. Our node classes
  (:class:`testbed.net.nodeclasses.DeadlineShell`) refuse commands longer than
  :data:`MAX_SHELL_COMMAND` bytes and give every ``cmd`` a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any, Sequence

MAX_SHELL_COMMAND = 2048
"""Longest command (bytes) written into a node's shell: half the terminal's 4,095-byte line."""

DEFAULT_SHELL_TIMEOUT = float(os.environ.get("CORECAST_CMD_TIMEOUT", "60"))
"""Deadline (s) of one ``node.cmd`` (env ``CORECAST_CMD_TIMEOUT``)."""


class NodeCommandError(RuntimeError):
    """A command in a node did not finish in time, was too long, or the node's shell is gone (one line)."""


def describe(argv: Sequence[str] | str, limit: int = 60) -> str:
    """A short quotation of a command for an error message."""
    text = argv if isinstance(argv, str) else " ".join(str(a) for a in argv)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group ``proc`` leads (``mnexec -d`` makes every node process a group leader)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def run_in_node(node: Any, argv: Sequence[str], timeout: float,
                input: str | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` inside ``node`` (``node.popen``) and return its CompletedProcess (text output).

    ``timeout`` seconds in all; on timeout raise :class:`NodeCommandError` (the
    process group is killed first), and on any exception (Ctrl-C) kill it and re-raise.
    """
    name = getattr(node, "name", str(node))
    try:
        proc = node.popen(list(argv), stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise NodeCommandError(f"{name}: cannot start '{describe(argv)}': {exc.strerror}") from None
    try:
        out, err = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise NodeCommandError(f"{name}: '{describe(argv)}' did not finish within {timeout:g} s") from None
    except BaseException:
        kill_group(proc)
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def start_in_node(node: Any, argv: Sequence[str]) -> subprocess.Popen:
    """Start ``argv`` inside ``node`` with text stdout piped (collect it with :func:`finish`)."""
    return node.popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=True)


def finish(proc: subprocess.Popen, deadline_s: float, what: str) -> str:
    """Stdout of a process started by :func:`start_in_node`, waiting at most ``deadline_s``."""
    try:
        out, _ = proc.communicate(timeout=max(0.0, deadline_s))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise NodeCommandError(f"{what} did not finish in time") from None
    except BaseException:
        kill_group(proc)
        raise
    return out or ""
