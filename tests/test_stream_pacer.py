"""Absolute-deadline pacer: deadline math with an injected clock (no sleeps)."""

import pytest

from testbed.stream.pacer import Pacer, chunk_rate


def test_chunk_rate_default_stream():
    assert chunk_rate(1_000_000, 1316) == pytest.approx(94.984802, rel=1e-6)
    assert chunk_rate(1_000_000, 1316, speed=20) == pytest.approx(20 * 94.984802, rel=1e-6)


@pytest.mark.parametrize("args", [(0, 1316), (1e6, 0), (1e6, 1316, 0), (-1, 1316)])
def test_chunk_rate_rejects_nonpositive(args):
    with pytest.raises(ValueError):
        chunk_rate(*args)


def test_deadlines_are_absolute():
    p = Pacer(rate=10.0, start=100.0)
    assert p.deadline(0) == 100.0
    assert p.deadline(25) == pytest.approx(102.5)
    assert p.delay(99.5) == pytest.approx(0.5)
    assert not p.due(99.99)
    assert p.due(100.0)


def test_no_drift_when_sends_take_time():
    """Each send completes late by a varying amount; deadlines stay on the grid."""
    p = Pacer(rate=100.0, start=0.0, late_slack=0.005)
    clock = 0.0
    for k in range(1000):
        clock = max(clock, p.deadline())          # the loop sleeps until the deadline
        assert p.sent(clock) == k
        clock += 0.002 + (k % 3) * 0.001          # the send itself takes 2-4 ms
    assert p.index == 1000
    assert p.deadline() == pytest.approx(10.0)    # not 10 s + accumulated send time
    assert p.late == 0


def test_late_chunks_counted_and_caught_up():
    p = Pacer(rate=10.0, start=0.0, late_slack=0.005)
    clock = 0.35                                  # a stall: chunks 0..3 are all due
    sent = []
    while p.due(clock):
        sent.append(p.sent(clock))
    assert sent == [0, 1, 2, 3]
    assert p.late == 4                            # even chunk 3 (0.05 s) is past the slack
    assert p.max_late == pytest.approx(0.35)
    assert p.delay(clock) == pytest.approx(0.05)  # chunk 4 still due at 0.4


def test_within_slack_is_not_late():
    p = Pacer(rate=10.0, start=0.0, late_slack=0.005)
    p.sent(0.004)
    assert p.late == 0
    p.sent(0.106)
    assert p.late == 1


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        Pacer(0.0, 0.0)
