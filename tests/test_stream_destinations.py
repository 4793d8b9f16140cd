"""The destination list and its line control protocol (sans-I/O)."""

import pytest

from testbed.stream.destinations import (
    ControlProtocol,
    DestinationError,
    Destinations,
    Event,
    parse_destination,
)


class Seq:
    def __init__(self):
        self.value = 0

    def __call__(self):
        return self.value


@pytest.fixture
def proto():
    seq = Seq()
    p = ControlProtocol(Destinations(), seq)
    p.seq = seq
    return p


def test_parse_destination():
    assert parse_destination("10.1.0.10", "6000") == ("10.1.0.10", 6000)
    assert parse_destination("10.1.0.10", 6000) == ("10.1.0.10", 6000)
    for eid, port, reason in [("10.1.0", 6000, "bad-eid"), ("host", 6000, "bad-eid"),
                              ("10.1.0.10", 0, "bad-port"), ("10.1.0.10", "x", "bad-port"),
                              ("10.1.0.10", 70000, "bad-port"), ("10.1.0.10", True, "bad-port")]:
        with pytest.raises(DestinationError) as info:
            parse_destination(eid, port)
        assert info.value.reason == reason


def test_join_leave_list_with_seq(proto):
    assert proto.handle_line("join 10.1.0.10 6000", 1.0) == "ok join 10.1.0.10 6000 seq=0"
    proto.seq.value = 7
    assert proto.handle_line("join 10.2.0.10 6001", 2.0) == "ok join 10.2.0.10 6001 seq=7"
    assert proto.handle_line("list", 2.5) == "ok list 2 10.1.0.10:6000 10.2.0.10:6001"
    proto.seq.value = 9
    assert proto.handle_line("leave 10.1.0.10 6000", 3.0) == "ok leave 10.1.0.10 6000 seq=9"
    assert proto.destinations.items() == (("10.2.0.10", 6001),)
    assert proto.destinations.events == [Event(1.0, "join", "10.1.0.10", 6000, 0),
                                         Event(2.0, "join", "10.2.0.10", 6001, 7),
                                         Event(3.0, "leave", "10.1.0.10", 6000, 9)]
    assert proto.handle_line("status", 4.0) == "ok status seq=9 destinations=1 joins=2 leaves=1"


def test_errors(proto):
    proto.handle_line("join 10.1.0.10 6000", 1.0)
    assert proto.handle_line("join 10.1.0.10 6000", 1.0) == "err already-joined 10.1.0.10 6000"
    assert proto.handle_line("leave 10.9.9.9 6000", 1.0) == "err not-joined 10.9.9.9 6000"
    assert proto.handle_line("join 10.1.0.10", 1.0).startswith("err usage")
    assert proto.handle_line("join 10.1.0.300 6000", 1.0) == "err bad-eid 10.1.0.300"
    assert proto.handle_line("join 10.1.0.11 99999", 1.0) == "err bad-port 99999"
    assert proto.handle_line("dance", 1.0) == "err unknown-command dance"
    assert proto.counters["errors"] == 6
    assert len(proto.destinations) == 1           # nothing changed by the errors
    assert len(proto.destinations.events) == 1


def test_text_with_several_lines_comments_and_blanks(proto):
    replies = proto.handle_text("join 10.1.0.10 6000\n\n# a comment\r\nJOIN 10.1.0.11 6000\r\nlist\n", 1.0)
    assert replies == ["ok join 10.1.0.10 6000 seq=0", "ok join 10.1.0.11 6000 seq=0",
                       "ok list 2 10.1.0.10:6000 10.1.0.11:6000"]


def test_items_cached_until_change():
    d = Destinations()
    d.join("10.1.0.10", 6000, 0.0, 0)
    first = d.items()
    assert d.items() is first
    v = d.version
    d.join("10.1.0.11", 6000, 0.0, 0)
    assert d.version == v + 1
    assert d.items() == (("10.1.0.10", 6000), ("10.1.0.11", 6000))
    d.leave("10.1.0.10", 6000, 0.0, 1)
    assert ("10.1.0.10", 6000) not in d
    assert ("10.1.0.11", 6000) in d


def test_rejoin_after_leave_keeps_history():
    d = Destinations()
    d.join("10.1.0.10", 6000, 0.0, 0)
    d.leave("10.1.0.10", 6000, 1.0, 5)
    d.join("10.1.0.10", 6000, 2.0, 9)
    assert [e.kind for e in d.events] == ["join", "leave", "join"]
    assert len(d) == 1
