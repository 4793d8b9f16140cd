"""Progress display: counting, rate/ETA, TTY vs log rendering, nesting (fake clock, no sleeping)."""

import io

import pytest

from testbed.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_format_duration():
    assert format_duration(0) == "0s"
    assert format_duration(59.4) == "59s"
    assert format_duration(75) == "1m15s"
    assert format_duration(3725) == "1h02m"
    assert format_duration(None) == "?"
    assert format_duration(float("inf")) == "?"


def test_counts_rate_eta():
    clock = Clock()
    p = Progress(10, "gamma", unit="points", stream=io.StringIO(), clock=clock)
    assert p.rate is None and p.eta is None
    clock.t += 20
    p.advance(2)
    assert p.done == 2
    assert p.rate == pytest.approx(0.1)
    assert p.eta == pytest.approx(80)
    p.update(50)
    assert p.done == 10  # clamped
    assert p.eta == 0


def test_non_tty_prints_every_interval_and_final():
    clock = Clock()
    out = io.StringIO()
    with Progress(4, "sweep", unit="points", stream=out, interval=10, clock=clock) as p:
        p.advance()  # t=0: nothing yet
        assert out.getvalue() == ""
        clock.t += 5
        p.advance()
        assert out.getvalue() == ""
        clock.t += 6
        p.advance()  # 11 s: one line
        clock.t += 1
        p.advance()  # 12 s: too soon
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("sweep [") and "3/4 points" in lines[0] and "ETA" in lines[0]
    assert "4/4 points" in lines[1] and "in 12s" in lines[1]
    assert "\r" not in out.getvalue()


def test_tty_single_updating_line():
    clock = Clock()
    out = TTY()
    with Progress(3, "demo", stream=out, clock=clock) as p:
        assert p.tty
        for _ in range(3):
            clock.t += 1
            p.advance()
    text = out.getvalue()
    assert text.count("\r") == 4  # three updates and the final draw
    assert text.endswith("\n") and text.count("\n") == 1
    assert "3/3" in text.split("\r")[-1]


def test_nested_stream_seconds():
    clock = Clock()
    out = TTY()
    bar = Progress(2, "clients", unit="points", stream=out, clock=clock)
    with bar.stream_seconds(30, note="k=40") as s:
        clock.t += 15
        s.update(15)
        assert bar.fraction == pytest.approx(0.25)
        assert "k=40 stream 15/30 s" in bar.line()
        assert bar.eta == pytest.approx(45)
    assert bar.child is None
    assert "stream" not in bar.line()
    bar.advance()
    bar.close()
    assert "| k=40 stream 15/30 s" in out.getvalue()


def test_disabled_and_broken_stream():
    out = io.StringIO()
    with Progress(2, stream=out, enabled=False) as p:
        p.advance()
    assert out.getvalue() == ""
    broken = io.StringIO()
    broken.close()
    with Progress(2, stream=broken, tty=True) as p:
        p.advance()  # must not raise
    assert p.done == 1


def test_child_bar_chunks():
    clock = Clock()
    out = io.StringIO()
    bar = Progress(3, "smoke", unit="points", stream=out, clock=clock, interval=1)
    with bar.child_bar(300, "corecast stream", unit="chunks") as c:
        clock.t += 2
        c.update(150)
    assert "corecast stream 150/300 chunks" in out.getvalue()
    assert bar.child is None
