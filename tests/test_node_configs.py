"""Issue 11 item 14: every field of every node config is validated; a bad one is one line and exit 2.

Two sets:

* the issue's samples, each run as the real program (``python -m nodes.X --config F``);
* a set generated from the schemas (:mod:`testbed.schemas`): for every field of
  every schema, nested ones included, a value of the wrong type and (where the
  field has a range, a length, a format or a choice) a value out of range, run
  in-process through the same ``node_main`` with the node's set-up replaced by a
  tripwire, so a value the schema let through fails the test instead of
  starting a daemon.

Each case asserts exit status 2 and a single stderr line naming the field.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import types
import typing
from concurrent.futures import ThreadPoolExecutor

import annotated_types as at
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import nodes.client
import nodes.mapserver
import nodes.peer
import nodes.source
import nodes.xtr
import testbed.nodeutil
from testbed.nodeutil import ConfigError
from testbed.schemas import parse
from testbed.schemas.client import ClientSchema
from testbed.schemas.mapserver import MapServerConfig
from testbed.schemas.peer import PeerSchema
from testbed.schemas.source import SourceSchema
from testbed.schemas.xtr import XtrConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def base_configs(tmp: str) -> dict[str, dict]:
    """A valid config per node program, with every field set (so nested fields can be broken too)."""
    ts = os.path.join(tmp, "content.ts")
    with open(ts, "wb") as fh:
        fh.write((b"\x47" + bytes(187)) * 10)
    out = lambda name: os.path.join(tmp, name)  # noqa: E731
    common = {"log_level": "info", "ready_file": out("r.json"), "status_file": out("s.json")}
    p2p_params = {"view_size": 20, "partners": 4, "max_partners": 8, "external": 1, "bm_period_s": 1.0,
                  "sched_period_s": 0.25, "buffer_s": 10.0, "window_s": 120.0, "request_timeout_s": 2.0,
                  "upload": 2.0, "burst_chunks": 4, "fanout": 4, "policy": "random"}
    return {
        "xtr": {**common, "name": "x1", "as": 1, "rloc": "10.0.0.2", "map_server": "10.255.0.1",
                "map_resolver": "10.255.0.1", "key": "k", "alg_id": 2, "tun": "x1-tun", "eid_block": "10.0.0.0/8",
                "eid_prefixes": ["10.1.0.0/16"], "tun_routes": ["10.200.0.0/16"], "lan_if": "x1-eth0",
                "core_if": "x1-eth1", "control_port": 4342, "corecast": True, "corecast_defence": True,
                "corecast_max_chunk": 1436, "corecast_quarantine": 64,
                "corecast_service": {"addr": "10.0.0.9", "port": 4340, "allowed_sources": ["10.0.0.1/32"]},
                "register_interval_s": 60, "request_timeout_s": 1.0, "request_tries": 3, "queue_limit": 64,
                "outer_mtu": 1500, "tun_mtu": 1464},
        "mapserver": {**common, "name": "ms", "listen": "127.0.0.1", "port": 0, "expiry_s": 180,
                      "negative_ttl_min": 15, "max_ttl_min": 1440, "rloc_prefixes": ["10.0.0.0/16"],
                      "table_file": out("table.json"),
                      "sites": [{"name": "as1", "key": "k", "keys": {"1": "k1"}, "algorithms": ["sha256"],
                                 "prefixes": ["10.1.0.0/16"], "rloc_prefixes": ["10.0.0.0/24"]}]},
        "source": {**common, "name": "src", "mode": "corecast", "eid": "127.0.0.1", "src_port": 5000,
                   "stream_id": 1, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 1.0, "chunks": 10,
                   "content": f"file:{ts}", "service": {"addr": "127.0.0.1", "port": 4340},
                   "clients": [["10.1.0.10", 6000]], "control": {"addr": "127.0.0.1", "port": 0},
                   "control_socket": out("ctl.sock"), "start_at": 0.0, "stall_timeout_s": 5.0,
                   "record_file": out("src.rec"), "sent_file": out("sent.ts"),
                   "p2p": {"asn": 0, "tracker_port": 4351, "params": p2p_params, "seed": 1}},
        "client": {**common, "name": "cl", "port": 6000, "bind": "0.0.0.0", "eids": ["10.1.0.10"],
                   "ssm": {"source": "10.0.0.10", "group": "232.1.1.1"},
                   "record_file": out("cl.bin"), "player": True, "player_mode": "pipe", "player_file": out("p.ts"),
                   "count_frames": True, "rcvbuf": 1 << 20},
        "peer": {**common, "name": "p1", "asn": 1, "tracker": {"addr": "127.0.0.1", "port": 4351, "asn": 0},
                 "stream_id": 1, "chunk_rate": 10.0, "chunk_bytes": 1316, "params": p2p_params, "seed": 1,
                 "peers": [{"eid": "127.0.0.1", "port": 4350, "join_at": 0.0, "leave_at": 1.0}],
                 "result_file": out("peers.json"), "stop_at": 2.0, "rcvbuf": 1 << 20},
    }


SCHEMAS = {"xtr": XtrConfig, "mapserver": MapServerConfig, "source": SourceSchema, "client": ClientSchema,
           "peer": PeerSchema}
NODES = {"xtr": nodes.xtr, "mapserver": nodes.mapserver, "source": nodes.source, "client": nodes.client,
         "peer": nodes.peer}
TRIPWIRES = {"xtr": "XtrNode", "mapserver": "MapServer", "source": "SourceNode", "client": "ClientNode",
             "peer": "PeerHost"}

# Out-of-range samples for the string formats, keyed by the validator's name.
FORMAT_SAMPLES = {"_ipv4": "10.0.0.256", "_prefix": "10.1.0.0/40", "_ifname": "x" * 16,
                  "check_out_path": "/nonexistent-dir/f", "_content": "dvd", "_socket_path": "/nonexistent-dir/s",
                  "_mode": "multicast", "_key_id": "300"}


def _unwrap(tp):
    """(inner type, metadata list) with Optional and Annotated peeled off."""
    meta: list = []
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp, *more = typing.get_args(tp)
            for item in more:  # a Field(...) inside Annotated carries its constraints in .metadata
                meta += list(item.metadata) if isinstance(item, FieldInfo) else [item]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0]
        else:
            return tp, meta


def _range_value(tp, meta):
    """A value of the right type but out of range, or None if the type has no range (bool)."""
    for m in meta:
        name = getattr(getattr(m, "func", None), "__name__", "")
        if name in FORMAT_SAMPLES:
            return FORMAT_SAMPLES[name]
    for m in meta:
        if isinstance(m, at.Ge):
            return m.ge - 1
        if isinstance(m, at.Gt):
            return m.gt
        if isinstance(m, at.MinLen) and m.min_length >= 1:
            return [] if typing.get_origin(tp) is list else ""
    for m in meta:
        if isinstance(m, at.Le):
            return m.le + 1
        if isinstance(m, at.MaxLen) and tp is str:
            return "x" * (m.max_length + 1)
    if typing.get_origin(tp) is typing.Literal:
        return "none-of-these"
    return None


def _wrong_type(tp):
    if tp is bool:
        return 1
    if tp in (int, float):
        return "7"
    if tp is str or typing.get_origin(tp) is typing.Literal:
        return 123
    if typing.get_origin(tp) in (list, tuple):
        return "not-a-list"
    if typing.get_origin(tp) is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)):
        return ["not-an-object"]
    raise AssertionError(f"no wrong-type sample for {tp}")


def generated_cases(model: type[BaseModel], base: dict, prefix: tuple = ()) -> list[tuple[tuple, object, str]]:
    """(path in the config, bad value, what) for every field of ``model``, recursing into nested models."""
    cases = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        tp, meta = _unwrap(info.annotation)
        meta = list(info.metadata) + meta
        path = prefix + (key,)
        cases.append((path, _wrong_type(tp), "wrong type"))
        value = _range_value(tp, meta)
        if value is not None:
            cases.append((path, value, "out of range"))
        elif tp is not bool and typing.get_origin(tp) not in (list, dict) and not (
                isinstance(tp, type) and issubclass(tp, BaseModel)):
            raise AssertionError(f"{model.__name__}.{name} has neither a range nor a format: bound it")
        inner = tp
        if typing.get_origin(tp) is list:
            inner, inner_meta = _unwrap(typing.get_args(tp)[0])
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                cases += generated_cases(inner, base, path + (0,))
            else:
                bad = _range_value(inner, inner_meta)
                cases.append((path + (0,), _wrong_type(inner) if typing.get_origin(inner) is not tuple else 5,
                              "element of wrong type"))
                if bad is not None:
                    cases.append((path + (0,), bad, "element out of range"))
        elif typing.get_origin(tp) is dict:
            key_tp, key_meta = _unwrap(typing.get_args(tp)[0])
            cases.append((path, {_range_value(key_tp, key_meta): "k"}, "key out of range"))
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            cases += generated_cases(inner, base, path)
    return cases


def _set(cfg: dict, path: tuple, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return cfg


def _where(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


class Started(RuntimeError):
    """The node got past validation."""


def _all_cases():
    for node, model in SCHEMAS.items():
        for path, value, what in generated_cases(model, {}):
            yield pytest.param(node, path, value, id=f"{node}-{_where(path)}-{what.replace(' ', '_')}")


@pytest.mark.parametrize("node,path,value", list(_all_cases()))
def test_generated_bad_field_is_one_line_exit_2(tmp_path, monkeypatch, capsys, node, path, value):
    cfg = _set(base_configs(str(tmp_path))[node], path, value)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    module = NODES[node]
    monkeypatch.setattr(module, TRIPWIRES[node], lambda *a, **k: (_ for _ in ()).throw(Started(node)))
    monkeypatch.setattr(testbed.nodeutil, "die_with_parent", lambda: None)
    monkeypatch.setattr(sys, "argv", [node, "--config", str(tmp_path / "cfg.json")])
    with pytest.raises(SystemExit) as exit_info:
        testbed.nodeutil.node_main(node, module.run)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2, err
    field = _where(path[:2]) if len(path) > 1 and not isinstance(path[1], int) else _where(path[:1])
    assert len(err) == 1 and err[0].startswith(f"{node}: config") and field in err[0], (err, field)


def test_base_configs_are_valid(tmp_path):
    """The generated cases start from configs the schemas accept, so each case breaks only its own field."""
    for node, cfg in base_configs(str(tmp_path)).items():
        SCHEMAS[node].model_validate_json(json.dumps(cfg))


def test_every_field_gets_a_case():
    for node, model in SCHEMAS.items():
        fields = {path[0] for path, _v, _w in generated_cases(model, {})}
        assert fields == {info.alias or name for name, info in model.model_fields.items()}, node


# ----------------------------------------------------------------- the issue's samples, as real programs

SAMPLES = [
    ("xtr", ("control_port",), 70000), ("xtr", ("control_port",), -1), ("xtr", ("control_port",), "abc"),
    ("xtr", ("register_interval_s",), 0), ("xtr", ("register_interval_s",), -5),
    ("xtr", ("register_interval_s",), "x"), ("xtr", ("queue_limit",), "a"), ("xtr", ("alg_id",), 9),
    ("xtr", ("outer_mtu",), 10), ("xtr", ("eid_prefixes",), ["10.1.0.0/40"]), ("xtr", ("eid_prefixes",), [123]),
    ("xtr", ("corecast_service", "allowed_sources"), ["x"]),
    ("mapserver", ("name",), 123), ("mapserver", ("sites", 0, "prefixes"), [5]),
    ("mapserver", ("table_file",), "/nonexistent-dir/table.json"),
    ("client", ("record_file",), "/nonexistent-dir/rec.bin"),
]


def _run_node(tmp: str, index: int, node: str, path: tuple, value) -> subprocess.CompletedProcess:
    cfg = _set(base_configs(tmp)[node], path, value)
    cfg_path = os.path.join(tmp, f"sample{index}.json")
    with open(cfg_path, "w") as fh:
        json.dump(cfg, fh)
    # as root, in a throwaway network namespace: a config wrongly accepted must not touch the host's network
    jail = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
    return subprocess.run([*jail, sys.executable, "-m", f"nodes.{node}", "--config", cfg_path], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_issue_samples_as_real_programs(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda item: _run_node(str(tmp_path), item[0], *item[1]), enumerate(SAMPLES)))
    for (node, path, value), proc in zip(SAMPLES, results):
        lines = proc.stderr.strip().splitlines()
        where = _where(path)
        assert proc.returncode == 2, (node, path, value, proc.stderr[-500:])
        assert len(lines) == 1 and lines[0].startswith(f"{node}: config '{where}"), (node, path, value, lines)
    assert not os.path.exists("/nonexistent-dir")


# ----------------------------------------------------------------- fuzzing: any JSON value in any field

JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                    | st.text(max_size=30), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from(sorted(SCHEMAS)), data=st.data(), value=JSON)
def test_any_json_in_any_field_is_accepted_or_one_config_error(tmp_path, node, data, value):
    cfg = base_configs(str(tmp_path))[node]
    key = data.draw(st.sampled_from(sorted(cfg) + ["unknown_key"]))
    cfg[key] = value
    try:
        parse(SCHEMAS[node], cfg)
    except ConfigError as err:
        assert "\n" not in str(err) and str(err).startswith("config")
