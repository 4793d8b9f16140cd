"""`corecast decode --tshark` judges a file as plain `corecast decode` does: one line, exit 2 (review findings)."""

from __future__ import annotations

import pytest

from conftest import corecast


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(b"hello, not a capture at all"), "not a pcap"),
    (lambda p: p.mkdir(), "a directory"),
    (lambda p: None, "no such file"),
])
def test_bad_capture_is_one_line_exit_2(tmp_path, make, needle):
    path = tmp_path / "cap.pcap"
    make(path)
    for extra in ([], ["--tshark"]):
        res = corecast("decode", str(path), *extra, timeout=60)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, (extra, res.stderr)
    assert needle in lines[0]


def test_a_bad_display_filter_says_what_tshark_said(tmp_path):
    from scapy.all import IP, UDP, Raw, wrpcap
    path = tmp_path / "one.pcap"
    wrpcap(str(path), [IP(src="172.16.0.2", dst="172.16.1.2") / UDP(sport=4341, dport=4341) / Raw(bytes(16))])
    res = corecast("decode", str(path), "--tshark", "-Y", "corecast.type==(", timeout=60)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "unexpected" in lines[0], res.stderr
