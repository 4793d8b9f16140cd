"""Fuzzing count_capture and decode over every link layer: no frame raises, every frame is counted once.

Random frames, and valid frames of every layout (tags included) mutated by byte
flips and truncation, with and without a snap length: the totals always add up
to the frames written, anything unreadable is ``other`` or ``malformed``, and
``corecast decode`` prints one line per frame.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testbed.capfile import write_pcap, write_pcapng
from testbed.decode import KINDS, count_capture, decode_command
from tests.test_decode import _ip_packets
from tests.test_decode_linktypes import LAYOUTS, _map_reply

TEMPLATES = [ip for _, ip in _ip_packets()] + [_map_reply()]
NAMES = sorted(LAYOUTS)


@st.composite
def frames(draw, layout: str):
    """A frame of ``layout``: random bytes, or a valid frame with flipped bytes and a cut tail."""
    _linktype, build = LAYOUTS[layout]
    if draw(st.booleans()):
        return draw(st.binary(max_size=120))
    frame = bytearray(build(draw(st.sampled_from(TEMPLATES))))
    for _ in range(draw(st.integers(0, 4))):
        frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
    return bytes(frame[:draw(st.integers(0, len(frame)))]) if draw(st.booleans()) else bytes(frame)


def _check(path: str, written: int) -> None:
    totals = count_capture(path)
    assert totals.total_packets == written
    assert all(totals.packets[k] >= 0 and totals.bytes[k] >= 0 for k in KINDS)
    out = io.StringIO()
    with redirect_stdout(out):
        assert decode_command(path) == 0
    assert len(out.getvalue().splitlines()) == written + 1 + len(KINDS) + 1 + (1 if totals.cut else 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), layout=st.sampled_from(NAMES), snaplen=st.sampled_from([0, 20, 40, 64, 96]))
def test_pcap_frames_never_raise(tmp_path, data, layout, snaplen):
    linktype = LAYOUTS[layout][0]
    batch = data.draw(st.lists(frames(layout), min_size=1, max_size=12))
    path = str(tmp_path / "f.pcap")
    write_pcap(path, batch, linktype, snaplen=snaplen or None)
    _check(path, len(batch))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), simple=st.booleans(), snaplen=st.sampled_from([0, 64]))
def test_pcapng_mixed_interfaces_never_raise(tmp_path, data, simple, snaplen):
    names = data.draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4))
    packets = []
    for _ in range(data.draw(st.integers(1, 12))):
        iface = 0 if simple else data.draw(st.integers(0, len(names) - 1))
        packets.append((iface, data.draw(frames(names[iface]))))
    path = str(tmp_path / "f.pcapng")
    write_pcapng(path, [LAYOUTS[n][0] for n in names], packets, simple=simple, snaplen=snaplen)
    _check(path, len(packets))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), ng=st.booleans())
def test_damaged_files_raise_capture_error_only(tmp_path, data, ng):
    """Bytes of a good pcap or pcapng flipped or cut anywhere: totals, or CaptureError, nothing else."""
    from testbed.capfile import CaptureError
    path = tmp_path / "good"
    frames_ = [LAYOUTS["sll2-vlan"][1](ip) for ip in TEMPLATES[:4]]
    if ng:
        write_pcapng(str(path), [LAYOUTS["sll2-vlan"][0], LAYOUTS["ethernet"][0]], [(0, f) for f in frames_])
    else:
        write_pcap(str(path), frames_, LAYOUTS["sll2-vlan"][0])
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    raw = raw[:data.draw(st.integers(0, len(raw)))]
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(raw))
    try:
        totals = count_capture(str(bad))
    except CaptureError as err:
        assert "\n" not in str(err)
    else:  # a damaged length may turn garbage into records: they are counted, each as some kind
        assert all(n >= 0 for n in totals.packets.values())
