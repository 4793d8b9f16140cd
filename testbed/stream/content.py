"""Content producers for the source: a live MPEG-TS test pattern from ffmpeg, or a file.

The ffmpeg producer runs ffmpeg *without* ``-re``: ffmpeg encodes as fast as it
can and the pipe's back-pressure holds it; the source's pacer sets the rate.
That is what lets ``speed`` > 1 work (ffmpeg must outrun the pacer: a 320x240
test pattern encodes at about 50x real time on one core here).

The TS is constant bit rate at ``bitrate``: the muxer's ``-muxrate`` pads with
null packets, the video gets 80 % of it with minrate = maxrate, so the PCR
advances exactly ``bitrate`` bits per second of bytes. Below about 300 kb/s
the 320x240 MPEG-2 video no longer fits, hence :data:`MIN_FFMPEG_BITRATE`.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import subprocess
import tempfile
import threading
from typing import Protocol

TS_PACKET = 188
TS_SYNC = 0x47
TS_SUFFIXES = (".ts", ".m2ts", ".mts", ".trp", ".tsv")
MIN_FFMPEG_BITRATE = 300_000
"""Lowest bitrate (bits/s) at which the test pattern's video fits the CBR mux."""
VIDEO_SHARE = 0.8
"""Share of the mux rate given to the video encoder."""


class ContentError(RuntimeError):
    """The content producer stalled, failed or ended before the stream did."""


class Producer(Protocol):
    """What the source needs from content: chunks of ``chunk_bytes`` bytes, in order."""

    description: str

    def start(self) -> None:
        """Start producing (spawn ffmpeg, open the file)."""

    def read_chunk(self, timeout: float) -> bytes:
        """Return the next chunk; b"" at the end of the content; raise ContentError on a stall."""

    def close(self) -> None:
        """Stop producing and release everything."""


def ffmpeg_command(bitrate: int, output: str = "pipe:1", seconds: float | None = None,
                   size: str = "320x240", fps: int = 25, gop: int = 25) -> list[str]:
    """Return the ffmpeg argv producing a CBR MPEG-TS test pattern at ``bitrate`` bits/s."""
    video = int(bitrate * VIDEO_SHARE)
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}"]
    if seconds is not None:
        cmd += ["-t", f"{seconds:g}"]
    cmd += ["-c:v", "mpeg2video", "-b:v", str(video), "-minrate", str(video), "-maxrate", str(video),
            "-bufsize", str(video // 2), "-g", str(gop),
            "-f", "mpegts", "-muxrate", str(int(bitrate)), output]
    return cmd


def generate_ts_file(path: str, seconds: float, bitrate: int = 1_000_000) -> int:
    """Write ``seconds`` of the CBR test pattern at ``bitrate`` to ``path``; return its size in bytes.

    Raise :class:`ContentError` if ffmpeg fails.
    """
    if bitrate < MIN_FFMPEG_BITRATE:
        raise ContentError(f"bitrate {bitrate} below {MIN_FFMPEG_BITRATE} b/s: the video would not fit")
    proc = subprocess.run(ffmpeg_command(bitrate, path, seconds), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise ContentError(f"ffmpeg failed ({proc.returncode}): {_tail(proc.stderr)}")
    return os.path.getsize(path)


def count_frames(path: str, timeout: float = 300.0) -> int:
    """Return the number of decodable video frames in the TS file ``path`` (ffprobe -count_frames).

    A missing, empty or undecodable file counts 0 frames.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return 0
    proc = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                           "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    match = re.search(r"\d+", proc.stdout)
    return int(match.group()) if match else 0


def count_frames_bytes(data: bytes, timeout: float = 300.0) -> int:
    """Return the decodable video frames in TS bytes ``data`` (e.g. the chunks a source sent)."""
    with tempfile.NamedTemporaryFile(suffix=".ts") as fh:
        fh.write(data)
        fh.flush()
        return count_frames(fh.name, timeout)


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) or "no message"


class FileProducer:
    """Chunks read from a file; the last chunk may be short; b"" at the end of the file."""

    def __init__(self, path: str, chunk_bytes: int) -> None:
        self.path = path
        self.chunk_bytes = chunk_bytes
        self.description = f"file:{path}"
        self._fh = None

    def start(self) -> None:
        """Open the file; raise ContentError if it cannot be read."""
        try:
            self._fh = open(self.path, "rb")
        except OSError as exc:
            raise ContentError(f"cannot open {self.path}: {exc.strerror}") from None

    def read_chunk(self, timeout: float) -> bytes:
        """Return the next chunk (never stalls)."""
        try:
            return self._fh.read(self.chunk_bytes)
        except OSError as exc:
            raise ContentError(f"reading {self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Close the file."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class FfmpegProducer:
    """Chunks of a live test pattern encoded by an ffmpeg child process.

    A reader thread cuts ffmpeg's stdout into chunks into a bounded queue (so a
    stall shows up as a timeout in :meth:`read_chunk`, not as a hung source).
    """

    QUEUE_CHUNKS = 256

    def __init__(self, bitrate: int, chunk_bytes: int, command: list[str] | None = None) -> None:
        self.bitrate = bitrate
        self.chunk_bytes = chunk_bytes
        self.command = command or ffmpeg_command(bitrate)
        self.description = f"ffmpeg test pattern at {bitrate} b/s"
        self._proc: subprocess.Popen | None = None
        self._queue: queue.Queue[bytes] = queue.Queue(self.QUEUE_CHUNKS)
        self._stderr: collections.deque[str] = collections.deque(maxlen=5)
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._ended = False

    def start(self) -> None:
        """Spawn ffmpeg and the reader threads; raise ContentError if ffmpeg is missing."""
        try:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, bufsize=0)
        except OSError as exc:
            raise ContentError(f"cannot run ffmpeg: {exc.strerror}") from None
        self._threads = [threading.Thread(target=self._read_stdout, name="ffmpeg-stdout", daemon=True),
                         threading.Thread(target=self._read_stderr, name="ffmpeg-stderr", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        out = self._proc.stdout
        buf = bytearray()
        size = self.chunk_bytes
        while not self._closing.is_set():
            try:
                data = out.read(65536)
            except (OSError, ValueError):  # closed under us by close()
                data = b""
            if not data:
                break
            buf += data
            while len(buf) >= size:
                if not self._put(bytes(buf[:size])):
                    return
                del buf[:size]
        if buf and not self._closing.is_set():
            self._put(bytes(buf))
        self._put(b"")

    def _put(self, item: bytes) -> bool:
        while not self._closing.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _read_stderr(self) -> None:
        try:
            for raw in self._proc.stderr:
                self._stderr.append(raw.decode("utf-8", "replace").rstrip())
        except (OSError, ValueError):  # closed under us by close()
            pass

    def read_chunk(self, timeout: float) -> bytes:
        """Return the next chunk; b"" if ffmpeg ended; ContentError after ``timeout`` s without data."""
        if self._ended:
            return b""
        try:
            chunk = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise ContentError(f"ffmpeg produced nothing for {timeout:g} s (stalled)") from None
        if not chunk:
            self._ended = True
        return chunk

    def exit_info(self) -> str:
        """Return ffmpeg's exit code and last stderr lines (for the log when content ends early)."""
        code = self._proc.poll() if self._proc else None
        return f"ffmpeg exit code {code}: {' | '.join(self._stderr) or 'no message'}"

    def close(self) -> None:
        """Stop ffmpeg (SIGKILL: it only generates a test pattern, and is usually blocked on a full pipe)."""
        self._closing.set()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for thread in self._threads:  # both end at EOF of their pipe, now that ffmpeg is gone
            thread.join(2.0)
        for stream in (proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


def make_producer(spec: str, bitrate: int, chunk_bytes: int) -> Producer:
    """Return the producer for a config ``content`` value: "ffmpeg" or "file:/path.ts".

    Raise ValueError for anything else.
    """
    if spec == "ffmpeg":
        if bitrate < MIN_FFMPEG_BITRATE:
            raise ValueError(f"content ffmpeg needs bitrate >= {MIN_FFMPEG_BITRATE}")
        return FfmpegProducer(bitrate, chunk_bytes)
    if spec.startswith("file:") and len(spec) > 5:
        return FileProducer(spec[5:], chunk_bytes)
    raise ValueError(f"content must be 'ffmpeg' or 'file:/path.ts', not {spec!r}")


def is_ts_content(spec: str) -> bool:
    """Whether the content ``spec`` ("ffmpeg" or "file:/path") is MPEG-TS.

    ffmpeg's test pattern is TS; a file is TS if its name ends in a TS suffix
    (:data:`TS_SUFFIXES`) or it starts with TS sync bytes (0x47 at 0 and 188).
    A file that cannot be read is judged by its name.
    """
    if spec == "ffmpeg":
        return True
    path = spec[5:] if spec.startswith("file:") else spec
    if path.lower().endswith(TS_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(TS_PACKET + 1)
    except OSError:
        return False
    return bool(head) and head[0] == TS_SYNC and (len(head) <= TS_PACKET or head[TS_PACKET] == TS_SYNC)


def check_chunk_bytes(spec: str, chunk_bytes: int) -> None:
    """Raise ValueError unless ``chunk_bytes`` keeps whole TS packets in each chunk of TS content.

    Only multiples of 188 bytes put whole MPEG-TS packets into each datagram, so a
    lost datagram costs whole TS packets and the player's 188-byte grid survives
    (1316 = 7 x 188 is the only one within the paper's 1200..1400). Other content
    may be cut at any size.
    """
    if chunk_bytes % TS_PACKET and is_ts_content(spec):
        raise ValueError(f"chunk_bytes {chunk_bytes} is not a multiple of {TS_PACKET}: MPEG-TS content needs whole "
                         f"TS packets in each chunk (1316 = 7 x {TS_PACKET} is the one within 1200..1400)")
