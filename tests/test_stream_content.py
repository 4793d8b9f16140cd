"""Content producers: the CBR test pattern from ffmpeg, files, stalls and early ends, frame counting."""

import shutil
import time

import pytest

from testbed.stream.content import (
    ContentError,
    FfmpegProducer,
    FileProducer,
    count_frames,
    count_frames_bytes,
    ffmpeg_command,
    generate_ts_file,
    make_producer,
)

needs_ffmpeg = pytest.mark.skipif(not shutil.which("ffmpeg") or not shutil.which("ffprobe"),
                                  reason="ffmpeg/ffprobe not installed")


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "two.ts"
    generate_ts_file(str(path), 2, 1_000_000)
    return path


@needs_ffmpeg
def test_generated_file_is_cbr_and_counts_frames(ts_file):
    data = ts_file.read_bytes()
    assert abs(len(data) - 250_000) < 250_000 * 0.01   # 2 s at 1 Mb/s, within 1 %
    assert len(data) % 188 == 0
    assert all(data[i] == 0x47 for i in range(0, len(data), 188))
    assert count_frames(str(ts_file)) == 50              # 25 fps x 2 s
    assert count_frames_bytes(data) == 50


def pcr_points(data: bytes) -> list[tuple[int, float]]:
    """(byte offset, PCR seconds) of every TS packet carrying a PCR."""
    out = []
    for off in range(0, len(data) - 187, 188):
        p = data[off:off + 188]
        if (p[3] >> 4) & 2 and p[4] > 0 and p[5] & 0x10:
            base = (p[6] << 25) | (p[7] << 17) | (p[8] << 9) | (p[9] << 1) | (p[10] >> 7)
            out.append((off, (base * 300 + (((p[10] & 1) << 8) | p[11])) / 27e6))
    return out


@needs_ffmpeg
def test_generated_file_pcr_advances_at_the_bitrate(ts_file):
    """CBR for real: bytes between any two PCRs / PCR time difference = the mux rate."""
    points = pcr_points(ts_file.read_bytes())
    assert len(points) > 20
    (o0, t0), (o1, t1) = points[0], points[-1]
    assert (o1 - o0) * 8 / (t1 - t0) == pytest.approx(1_000_000, rel=1e-4)
    for (oa, ta), (ob, tb) in zip(points, points[1:]):
        assert (ob - oa) * 8 / (tb - ta) == pytest.approx(1_000_000, rel=1e-3)


def test_command_is_cbr():
    cmd = ffmpeg_command(2_000_000)
    assert cmd[cmd.index("-muxrate") + 1] == "2000000"
    assert cmd[cmd.index("-minrate") + 1] == cmd[cmd.index("-maxrate") + 1] == "1600000"
    assert "-re" not in cmd and cmd[-1] == "pipe:1"


def test_count_frames_of_nothing(tmp_path):
    assert count_frames(str(tmp_path / "missing.ts")) == 0
    (tmp_path / "empty.ts").write_bytes(b"")
    assert count_frames(str(tmp_path / "empty.ts")) == 0


def test_file_producer(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 11)            # 2816 bytes
    p = FileProducer(str(path), 1316)
    p.start()
    assert [len(p.read_chunk(1.0)) for _ in range(4)] == [1316, 1316, 184, 0]
    p.close()
    with pytest.raises(ContentError):
        FileProducer(str(tmp_path / "missing"), 1316).start()


@needs_ffmpeg
def test_ffmpeg_producer_chunks_are_ts():
    p = FfmpegProducer(1_000_000, 1316)
    p.start()
    try:
        chunks = [p.read_chunk(60.0) for _ in range(20)]  # a deadline, not a speed: ffmpeg starts slowly under load
    finally:
        p.close()
    assert all(len(c) == 1316 and c[0] == 0x47 and c[188] == 0x47 for c in chunks)


def test_stalled_producer_raises():
    p = FfmpegProducer(1_000_000, 1316, command=["sleep", "300"])
    p.start()
    t0 = time.monotonic()
    with pytest.raises(ContentError, match="stalled"):
        p.read_chunk(0.3)
    assert time.monotonic() - t0 < 120  # the 0.3 s deadline held, not the 300 s to EOF (loose for a loaded CI machine)
    p.close()


def test_producer_that_ends_early():
    p = FfmpegProducer(1_000_000, 1316, command=["sh", "-c", "printf 'abc'; echo oops >&2; exit 3"])
    p.start()
    assert p.read_chunk(60.0) == b"abc"  # deadlines for a loaded machine: the reads end at once here
    assert p.read_chunk(60.0) == b""
    assert p.read_chunk(60.0) == b""
    p.close()
    assert "exit code 3" in p.exit_info() and "oops" in p.exit_info()


def test_make_producer_rejects():
    with pytest.raises(ValueError):
        make_producer("rtsp://x", 1_000_000, 1316)
    with pytest.raises(ValueError):
        make_producer("ffmpeg", 100_000, 1316)
    with pytest.raises(ValueError):
        make_producer("file:", 1_000_000, 1316)
    assert isinstance(make_producer("file:/x.ts", 1_000_000, 1316), FileProducer)
    with pytest.raises(ContentError):
        generate_ts_file("/nonexistent/dir/x.ts", 1, 100_000)
