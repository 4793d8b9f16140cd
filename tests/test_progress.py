"""Progress bars (testbed.bars, drawn by rich): counting, ETA, nesting, terminal vs log output (fake clock)."""

import io
import re

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
    assert "stream" not in bar.line() and [t.visible for t in bar.rich.tasks] == [True, False]
    bar.advance()
    assert len(bar.rich.tasks) == 1  # the sweep moved on: the finished stream is gone for good
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
    for item in ctx.points([1, 2], label="points"):  # the default modes: two streams per point
        for mode in ("unicast", "corecast"):
            with ctx.sub_progress(10, f"{mode} stream", unit="chunks") as sub:
                sub.update(5)
                seen.append(ctx._bar.fraction)
                sub.update(10)
            seen.append(ctx._bar.fraction)
    assert seen == [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0]
    standalone = ctx.sub_progress(4, "alone")
    assert isinstance(standalone, type(sub)) and standalone.parent is None
    standalone.close()


def test_ctrl_c_mid_stream_last_line_tells_how_far():
    # the reproduction: `corecast run gamma` interrupted 37 s in, in the second point's corecast stream;
    # the last line read "gamma points 0/3 points in 0:00:37" (as if finished, the stream's 950 chunks lost)
    clock = Clock()
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Bar(3, "gamma points", unit="points", stream=out, clock=clock, interval=1000) as bar:
            with bar.child_bar(1500, "unicast stream", unit="chunks sent") as s:
                s.update(1500)
            bar.update(1)
            with bar.child_bar(1500, "corecast stream", unit="chunks sent") as s:
                clock.t += 37
                s.update(950)
                raise KeyboardInterrupt
    last = out.getvalue().splitlines()[-1]
    assert last == "gamma points 1/3 points stopped after 0:00:37 | corecast stream 950/1500 chunks sent"
    assert bar.stopped and s.stopped and bar.closed


def test_standalone_stream_stopped_says_so_and_a_finished_one_does_not():
    clock = Clock()
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        with Bar(3000, "unicast stream", unit="chunks sent", stream=out, clock=clock) as s:
            clock.t += 10
            s.update(951)
            raise KeyboardInterrupt
    assert out.getvalue().splitlines()[-1] == "unicast stream 951/3000 chunks sent stopped after 0:00:10"
    out = io.StringIO()
    with pytest.raises(RuntimeError):  # the total was reached before the exception: it did finish
        with Bar(2, "done", stream=out, clock=clock) as s:
            s.update(2)
            raise RuntimeError("after the end")
    assert not s.stopped and out.getvalue().splitlines()[-1] == "done 2/2 in 0:00:00"


def test_failed_stream_stays_on_the_line_until_the_sweep_moves_on():
    # run_sweep catches a failed point and goes on: the stopped child shows until the next update
    clock = Clock()
    bar = Bar(2, "sweep", unit="points", stream=io.StringIO(), clock=clock)
    with pytest.raises(RuntimeError):
        with bar.child_bar(100, "corecast stream", unit="chunks") as s:
            s.update(40)
            raise RuntimeError("source died")
    assert bar.line().endswith("| corecast stream 40/100 chunks") and len(bar.rich.tasks) == 2
    assert bar.fraction == 0  # a stopped stream's share is not progress
    bar.update(1)
    assert "stream" not in bar.line() and len(bar.rich.tasks) == 1 and bar.child is None
    with bar.child_bar(100, "unicast stream", unit="chunks") as s2:
        s2.update(50)
        assert bar.fraction == pytest.approx(0.75)
    bar.close()
    assert bar.line().startswith("sweep 1/2") and not bar.stopped  # close() without an exception: "in"


def test_ctrl_c_on_a_terminal_leaves_both_rows_with_stopped():
    clock = Clock()
    out = TTY()
    with pytest.raises(KeyboardInterrupt):
        with Bar(3, "gamma points", unit="points", stream=out, clock=clock) as bar:
            with bar.child_bar(1500, "corecast stream", unit="chunks") as s:
                clock.t += 37
                s.update(950)
                raise KeyboardInterrupt
    text = out.getvalue()
    final = text[text.rindex("gamma points"):]  # rich's last frame
    assert "0/3" in final and "950/1500" in final and final.count("stopped after 0:00:37") == 2
    assert "in 0:00:37" not in final


def test_ctrl_c_after_the_stream_finished_shows_the_finished_stream():
    # the real run stopped 37 s in, just after the corecast stream's last chunk, before the point was recorded:
    # the last line was "gamma points 0/3 points stopped after 0:00:37" and hid how far the point had got
    for tty in (False, True):
        clock = Clock()
        out = TTY() if tty else io.StringIO()
        with pytest.raises(KeyboardInterrupt):
            with Bar(3, "gamma points", unit="points", stream=out, clock=clock, interval=1000) as bar:
                with bar.child_bar(1500, "unicast stream", unit="chunks sent") as s:
                    s.update(1500)
                with bar.child_bar(1500, "corecast stream", unit="chunks sent") as s:
                    clock.t += 37
                    s.update(1500)
                assert "stream" not in bar.line()  # while running, a finished stream leaves the line
                raise KeyboardInterrupt
        text = out.getvalue()
        last = text[text.rindex("gamma points"):]
        assert "corecast stream" in last and "1500/1500" in last and "unicast stream" not in last
        assert "stopped after 0:00:37" in last and not s.stopped
        if not tty:
            assert last.strip() == "gamma points 0/3 points stopped after 0:00:37 | corecast stream 1500/1500 chunks sent"


def test_experiment_points_interrupted_report_how_far(tmp_path, capsys):
    from testbed.experiment import Context
    from testbed.results import RunDir
    run = RunDir.create("gamma", {}, out=str(tmp_path / "r"))
    ctx = Context("gamma", {}, run, keep_pcap=False)
    with pytest.raises(KeyboardInterrupt):
        for item in ctx.points([1, 2, 3]):
            with ctx.sub_progress(1500, "corecast stream", unit="chunks sent") as sub:
                sub.update(1500 if item == 1 else 950)
                if item == 2:
                    raise KeyboardInterrupt
    last = capsys.readouterr().err.splitlines()[-1]
    assert re.fullmatch(r"gamma points 1/3 points stopped after \d+:\d\d:\d\d \| corecast stream 950/1500 chunks sent",
                        last), last  # real clock: any elapsed time
    assert ctx._bar is None  # a later stream gets a bar of its own, not a child of the closed sweep


def test_second_stream_of_a_point_does_not_set_the_sweep_back():
    # the real run: 'gamma points 1/3 ... ETA 0:00:38' at the end of the unicast stream, then '0/3 ETA -:--:--'
    # and 'ETA 0:16:33' as the corecast stream began: the point's first stream counted for nothing
    clock = Clock()
    bar = Bar(3, "gamma points", unit="points", stream=io.StringIO(), clock=clock)
    bar.children_per_unit = 2
    fractions, etas = [], []
    for mode in ("unicast", "corecast"):
        with bar.child_bar(1500, f"{mode} stream", unit="chunks sent") as s:
            for sent in (0, 750, 1500):
                clock.t += 5
                s.update(sent)
                fractions.append(bar.fraction)
                etas.append(bar.eta)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1 / 3)
    assert fractions[3] == pytest.approx(1 / 6) and etas[3] == pytest.approx(100)  # 20 s for a sixth
    bar.update(1)
    assert bar.fraction == pytest.approx(1 / 3)  # the point recorded: no jump either way
    with bar.child_bar(1500, "unicast stream") as s:
        s.update(750)
        assert bar.fraction == pytest.approx(1 / 3 + 1 / 12)  # the new point starts from none of its streams


def test_context_counts_each_points_own_modes(tmp_path):
    from experiments.common import Point
    from testbed.experiment import Context
    from testbed.results import RunDir
    run = RunDir.create("smoke", {}, out=str(tmp_path / "r"))
    ctx = Context("smoke", {"modes": "unicast,corecast,lispmc"}, run, keep_pcap=False)
    points = [Point("a", {}, 1.0, modes=("unicast",)), Point("b", {}, 1.0)]
    per_point = []
    for _p in ctx.points(points):
        per_point.append(ctx._bar.children_per_unit)
    assert per_point == [1, 3]
