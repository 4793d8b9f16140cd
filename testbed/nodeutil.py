"""Small helpers every node program (``python -m nodes.NAME --config FILE``) shares.

A node reads one JSON config written by the testbed, sets up logging to stderr
(the testbed sends it to ``logs/NAME.log``), writes its ``ready_file`` once its
sockets are bound, stops on SIGTERM/SIGINT, and writes its counters to its
``status_file`` (periodically and at exit).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from typing import Any


class ConfigError(ValueError):
    """A node or topology configuration is invalid; the message is one line for the user."""


def write_text_atomic(path: str, text: str, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` via a temp file and rename (readers never see half a file)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_json_atomic(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_status_file(path: str, obj: Any) -> bool:
    """Write a daemon's status file atomically; False instead of an OSError (its directory removed or unwritable).

    A status file is a report, never a reason for a daemon to stop: callers count the failures and log them.
    """
    try:
        write_json_atomic(path, obj)
    except OSError:
        return False
    return True


class StatusWriter:
    """Writes a daemon's status file from a thread of its own, so that a slow filesystem never stalls the
    daemon's socket loop.

    At 1,000 ASes two thousand processes create and rename files in one state directory; a writer
    preempted while it holds the directory's lock kept the ITR blocked in ``rename`` for seconds while
    its service socket overflowed. The loop serialises the status itself (``submit(obj)``: the JSON text
    is built in the caller's thread, so live counters are never read concurrently) and goes on; the
    thread writes the latest text atomically (older ones not yet written are skipped). ``close(obj)``
    stops the thread (bounded wait) and writes the final status synchronously. Write errors (OSError) are
    counted in ``errors``, never raised, neither in the loop nor by ``close``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors = 0
        self._text: str | None = None
        self._closed = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def submit(self, obj: Any) -> None:
        """Queue ``obj`` (serialised now) to be written; replaces a queued one not yet written."""
        text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
        with self._cv:
            self._text = text
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._text is None and not self._closed:
                    self._cv.wait()
                if self._text is None:
                    return
                text, self._text = self._text, None
            try:
                write_text_atomic(self.path, text)
            except OSError:
                self.errors += 1

    def close(self, obj: Any = None, timeout: float = 10.0) -> None:
        """Stop the thread (waiting at most ``timeout`` s) and write ``obj`` if given, in this thread."""
        with self._cv:
            self._closed = True
            self._text = None
            self._cv.notify()
        self._thread.join(timeout)
        if obj is not None:
            try:
                write_json_atomic(self.path, obj)
            except OSError:  # the state directory removed or unwritable: counted, never raised at exit
                self.errors += 1


def read_json_object(path: str, what: str = "") -> dict:
    """Read a file holding one JSON object; ConfigError with a one-line reason (``what`` names the file's role)."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}{path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}{path} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{what}{path} must hold a JSON object")
    return obj


def read_status(path: str) -> dict:
    """A daemon's status (or sent/ready) JSON file as a dict; {} while it is not written yet or unreadable."""
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def load_json_config(path: str) -> dict:
    """Read a node's JSON config; raise ConfigError with a one-line reason."""
    return read_json_object(path, "config ")


def setup_logging(name: str, level: str = "info") -> logging.Logger:
    """Log to stderr with timestamps; return the node's logger."""
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, str(level).upper(), logging.INFO),
        format=f"%(asctime)s {name} %(levelname)s %(message)s",
    )
    return logging.getLogger(name)


def mark_ready(cfg: dict, **info: Any) -> None:
    """Tell the testbed this node is up: write ``cfg['ready_file']`` if configured."""
    path = cfg.get("ready_file")
    if path:
        write_json_atomic(path, {"pid": os.getpid(), **info})


class StopFlag:
    """Set by SIGTERM or SIGINT; loops poll ``stop.is_set`` between short waits."""

    def __init__(self) -> None:
        self._set = False
        self.signum: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, _frame: object) -> None:
        self._set = True
        self.signum = signum

    def is_set(self) -> bool:
        """True once a stop signal arrived."""
        return self._set


def die_with_parent() -> None:
    """Stop this node (SIGTERM to itself) when the testbed process that started it ends, however it ends.

    The testbed passes the read end of a pipe it holds the only write end of
    (env ``CORECAST_PARENT_FD=FD:INODE``, see :func:`testbed.net.daemon.watch_env`);
    a watch thread reads it and gets end-of-file when that process is gone. Without
    it (a node started by hand) the kernel's ``PR_SET_PDEATHSIG`` is asked instead,
    which fires when the *thread* that forked us exits (Linux prctl(2)).
    """
    import threading
    spec = os.environ.pop("CORECAST_PARENT_FD", "")  # our own children must not take it for theirs
    try:
        fd_text, ino_text = spec.split(":", 1)
        fd, ino = int(fd_text), int(ino_text)
        if os.fstat(fd).st_ino != ino:
            raise ValueError("not the testbed's pipe")
    except (ValueError, OSError):
        fd = -1
    if fd >= 0:
        os.set_inheritable(fd, False)

        def watch() -> None:
            while True:
                try:
                    if not os.read(fd, 64):
                        break
                except InterruptedError:
                    continue
                except OSError:
                    break
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
        return
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def node_main(name: str, run) -> None:
    """Parse ``--config FILE`` and call ``run(cfg)``; a ConfigError becomes one line and exit 2."""
    die_with_parent()
    parser = argparse.ArgumentParser(prog=f"python -m nodes.{name}")
    parser.add_argument("--config", required=True, help="JSON config written by the testbed")
    args = parser.parse_args()
    try:
        cfg = load_json_config(args.config)
        code = run(cfg)
    except ConfigError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
