"""Mode lispmc (RFC 8378): its model j(64+P) per chunk, its source and client configs, the sender."""

from __future__ import annotations

from types import SimpleNamespace

from testbed.modemodels import MODELS, CoreShape
from testbed.modes import MODES, LispMcMode, parse_modes
from testbed.schemas import parse
from testbed.schemas.client import ClientSchema
from testbed.schemas.source import SourceSchema
from testbed.stream.sender import Sender


def test_model_is_one_copy_per_as_with_receivers():
    m = MODELS["lispmc"]
    assert MODES["lispmc"] is LispMcMode and parse_modes("lispmc") == (LispMcMode,)
    per_as, capable = [3, 0, 1, 10], [True, False, False, True]
    assert m.uplink_bytes(per_as, capable, 1316) == 3 * (64 + 1316)      # j = 3 ASes with receivers
    assert m.uplink_packets(per_as, capable) == 3
    assert m.source_as_bytes(14, 1316) == 28 + 1316 and m.source_as_packets(14) == 1
    assert m.uniform_uplink_bytes(10, 1316, 20, 1.0) == 20 * (64 + 1316)
    # CoreCast / RFC 8378 at gamma 1, 10, 100 (P = 1316): (48+P+68 gamma) / (64+P)
    cc = MODELS["corecast"]
    ratios = [cc.as_bytes(g, True, 1316) / m.as_bytes(g, True, 1316) for g in (1, 10, 100)]
    assert [round(r, 3) for r in ratios] == [round((1364 + 68 * g) / 1380, 3) for g in (1, 10, 100)]


def test_per_link_model_follows_each_path():
    m = MODELS["lispmc"]
    links = m.link_bytes([2, 0, 5], [True] * 3, 1000, CoreShape.star(3))
    assert links == {("x0-core", "up"): 2128, ("x0-core", "down"): 0, ("x1-core", "up"): 0,
                     ("x1-core", "down"): 1064, ("x2-core", "up"): 0, ("x2-core", "down"): 0,
                     ("x3-core", "up"): 0, ("x3-core", "down"): 1064}
    assert sum(m.link_packets([2, 0, 5], [True] * 3, CoreShape.star(3)).values()) == 4


def test_source_and_client_configs_validate():
    mode = LispMcMode(SimpleNamespace(plan=SimpleNamespace(source_eid="10.0.0.10")))
    src = {"name": "s", "eid": "10.0.0.10", "content": "ffmpeg", **mode.source_config()}
    parsed = parse(SourceSchema, src)
    assert parsed.mode == "lispmc" and parsed.service.addr == "232.1.1.1" and parsed.service.port == 6000
    cl = parse(ClientSchema, {"name": "c", "eids": ["10.1.0.10"], **mode.client_config()})
    assert (cl.ssm.source, cl.ssm.group) == ("10.0.0.10", "232.1.1.1")
    sender = Sender("lispmc", src_eid="10.0.0.10", src_port=5000, service=("232.1.1.1", 6000))
    out = sender.datagrams(0, b"x" * 1316, [("10.1.0.10", 6000), ("10.2.0.10", 6000)])
    assert out == [(b"x" * 1316, "232.1.1.1", 6000)] and sender.counters.ip_bytes == 28 + 1316
    assert sender.datagrams(1, b"y" * 10, []) == [(b"y" * 10, "232.1.1.1", 6000)]   # no receivers known: still sent
