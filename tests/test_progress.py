"""Progress bars (testbed.bars, drawn by rich): counting, ETA, nesting, terminal vs log output (fake clock)."""

import io

import pytest

from testbed.bars import Bar, clock_text


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


class TTY(io.StringIO):
    def isatty(self):
        return True


def test_clock_text():
    assert clock_text(0) == "0:00:00"
    assert clock_text(59.4) == "0:00:59"
    assert clock_text(75) == "0:01:15"
    assert clock_text(3725) == "1:02:05"
    assert clock_text(None) == clock_text(float("inf")) == clock_text(float("nan")) == "-:--:--"


def test_counts_and_eta_from_elapsed_share():
    clock = Clock()
    p = Bar(10, "gamma", unit="points", stream=io.StringIO(), clock=clock)
    assert p.eta is None  # nothing done yet
    clock.t += 20
    p.advance(2)
    assert p.done == 2 and p.fraction == pytest.approx(0.2)
    assert p.eta == pytest.approx(80)  # 20 s for 2 points, 8 to go
    p.update(50)
    assert p.done == 10  # clamped
    assert p.eta == 0
    p.update(-3)
    assert p.done == 0


def test_log_output_is_plain_lines_every_interval_and_a_final_one():
    clock = Clock()
    out = io.StringIO()
    with Bar(4, "sweep", unit="points", stream=out, interval=10, clock=clock) as p:
        assert not p.tty
        p.advance()  # t=0: nothing yet
        assert out.getvalue() == ""
        clock.t += 5
        p.advance()
        assert out.getvalue() == ""
        clock.t += 6
        p.advance()  # 11 s: one line
        clock.t += 1
        p.advance()  # 12 s: too soon for another
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "sweep 3/4 points 0:00:11 ETA 0:00:04"
    assert lines[1] == "sweep 4/4 points in 0:00:12"
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_terminal_output_is_redrawn_by_rich():
    clock = Clock()
    out = TTY()
    with Bar(3, "demo", unit="points", stream=out, clock=clock) as p:
        assert p.tty
        for _ in range(3):
            clock.t += 1
            p.advance()
    text = out.getvalue()
    assert "\x1b[" in text  # cursor control: drawn in place, not appended
    assert "demo" in text and "3/3" in text and "in 0:00:03" in text
    assert text.count("\n") <= 3  # not a line per update


def test_nested_stream_counts_in_parent_eta_and_goes_away():
    clock = Clock()
    out = io.StringIO()
    bar = Bar(2, "clients", unit="points", stream=out, clock=clock, interval=1)
    with bar.stream_seconds(30, "k=40 stream") as s:
        clock.t += 15
        s.update(15)
        assert bar.fraction == pytest.approx(0.25)
        assert bar.eta == pytest.approx(45)  # 15 s for a quarter
        assert bar.line().endswith("| k=40 stream 15/30 s")
        assert len(bar.rich.tasks) == 2
    assert bar.child is None or bar.child.closed
    assert "stream" not in bar.line() and len(bar.rich.tasks) == 1
    bar.advance()
    bar.close()
    assert "| k=40 stream 15/30 s" in out.getvalue()


def test_child_bar_chunks_in_log_line():
    clock = Clock()
    out = io.StringIO()
    bar = Bar(3, "smoke", unit="points", stream=out, clock=clock, interval=1)
    with bar.child_bar(300, "corecast stream", unit="chunks") as c:
        clock.t += 2
        c.update(150)
    assert "smoke 0/3 points 0:00:02 ETA 0:00:10 | corecast stream 150/300 chunks" in out.getvalue()


def test_disabled_and_broken_stream_never_raise():
    out = io.StringIO()
    with Bar(2, stream=out, enabled=False) as p:
        p.advance()
    assert out.getvalue() == "" and p.done == 1
    broken = io.StringIO()
    broken.close()
    for tty in (True, False):
        clock = Clock()
        with Bar(2, "x", stream=broken, tty=tty, clock=clock, interval=0) as p:
            clock.t += 1
            p.advance()  # must not raise
            with p.child_bar(5, "y") as c:
                c.update(2)
        assert p.done == 1 and not p.enabled


def test_experiment_context_uses_the_bars(tmp_path):
    from testbed.experiment import Context
    from testbed.results import RunDir
    run = RunDir.create("smoke", {}, out=str(tmp_path / "r"))
    ctx = Context("smoke", {}, run, keep_pcap=False)
    seen = []
    for item in ctx.points([1, 2], label="points"):
        with ctx.sub_progress(10, "unicast stream", unit="chunks") as sub:
            sub.update(10)
            seen.append((item, ctx._bar.fraction))
    assert seen == [(1, 0.5), (2, 1.0)]
    standalone = ctx.sub_progress(4, "alone")
    assert isinstance(standalone, type(sub)) and standalone.parent is None
    standalone.close()
