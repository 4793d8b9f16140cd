"""Capture options: whole packets or a checked snap length, pcapng with a comment naming the capture.

The counting stays exact on the pcapng (testbed.decode reads it) and on a cut
capture; editcap (wireshark-common, with tshark) writes the pcapng.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from testbed.decode import count_capture
from testbed.net.capture import MIN_SNAPLEN, Capture, CaptureError, capture_comment, check_snaplen, to_pcapng

sys.path.insert(0, os.path.dirname(__file__))
from test_tshark_corecast import demo_frames  # noqa: E402

from testbed.decode import write_pcap  # noqa: E402


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is required in CI")
        pytest.skip(f"{tool} not installed")
    return path


def test_check_snaplen():
    assert check_snaplen(0) == 0
    assert check_snaplen(MIN_SNAPLEN) == 64
    assert check_snaplen(1500) == 1500
    for bad in (-1, 1, 63, 262145, True, "128", 12.5):
        with pytest.raises(ValueError, match="snap length"):
            check_snaplen(bad)


def test_capture_defaults_to_whole_packets():
    cap = Capture(None, "x0-eth1", "/tmp/none.pcap")
    assert cap.snaplen == 0 and cap.comment is None
    with pytest.raises(ValueError):
        Capture(None, "x0-eth1", "/tmp/none.pcap", snaplen=20)


def test_capture_comment_names_run_mode_node_interface():
    text = capture_comment("results/demo/20261130T030000Z", "corecast", "x0", "x0-eth1", point="gamma=2")
    assert text == ("corecast run=results/demo/20261130T030000Z mode=corecast node=x0 interface=x0-eth1 "
                    "point=gamma=2")


def test_to_pcapng_keeps_counts_and_comment(tmp_path):
    _need("editcap")
    capinfos = _need("capinfos")
    frames = demo_frames(3)
    pcap = tmp_path / "p-x0-core.pcap"
    write_pcap(str(pcap), frames)
    before = count_capture(str(pcap))
    comment = capture_comment("r1", "corecast", "x0", "x0-eth1")
    out = to_pcapng(str(pcap), comment)
    assert out == str(tmp_path / "p-x0-core.pcapng") and not pcap.exists()
    with open(out, "rb") as fh:
        assert fh.read(4) == b"\x0a\x0d\x0d\x0a"  # pcapng section header block
    after = count_capture(out)
    assert after.packets == before.packets and after.bytes == before.bytes
    info = subprocess.run([capinfos, out], capture_output=True, text=True, timeout=60).stdout
    assert f"Capture comment:     {comment}" in info


def test_cut_capture_counts_exactly(tmp_path):
    frames = demo_frames(2)
    whole, cut = tmp_path / "whole.pcap", tmp_path / "cut.pcap"
    write_pcap(str(whole), frames)
    subprocess.run([_need("editcap"), "-s", str(MIN_SNAPLEN), str(whole), str(cut)], check=True, timeout=60)
    assert cut.stat().st_size < whole.stat().st_size / 5
    a, b = count_capture(str(whole)), count_capture(str(cut))
    assert a.packets == b.packets and a.bytes == b.bytes
    assert a.packets["corecast-ref"] == 2 * 4


def test_to_pcapng_failure_is_one_error_and_keeps_the_pcap(tmp_path):
    _need("editcap")
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CaptureError, match="editcap failed"):
        to_pcapng(str(bad), "c")
    assert bad.exists() and not (tmp_path / "bad.pcapng").exists() and not (tmp_path / "bad.pcapng.part").exists()


def test_run_rejects_a_bad_snaplen_in_one_line(tmp_path):
    out = tmp_path / "never"
    res = subprocess.run([sys.executable, "-m", "testbed", "run", "smoke", "--snaplen", "20", "--out", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "--snaplen: snap length must be 0 (whole packets) or 64" in res.stderr
    assert not out.exists()  # rejected before the run directory is made
