"""Delivery modes as classes (testbed.modes): the registry, the ``modes`` parameter, StreamSpec, the CLI's exit 2."""

from __future__ import annotations

import os

import pytest

from conftest import corecast
from experiments import EXPERIMENTS, join
from experiments.common import Point, run_modes
from testbed.experiment import parse_experiment_params
from testbed.measure import StreamSpec
from testbed.modemodels import MODELS, UnicastModel
from testbed.modes import (DEFAULT_MODES, MODES, CoreCastMode, Mode, UnicastMode, get_mode, parse_modes, register,
                           selected_modes)
from testbed.nodeutil import ConfigError


def test_registry_ties_each_mode_to_its_model_and_source():
    assert list(MODES)[:2] == ["unicast", "corecast"] and DEFAULT_MODES == ("unicast", "corecast")
    for name, cls in MODES.items():
        assert issubclass(cls, Mode) and cls.name == name and cls.description
        assert cls.model.name == name
        if getattr(cls, "layer", "network") == "network":  # p2p's model is its own (testbed.p2p.model)
            assert cls.model is MODELS[name]
        assert cls().source_config()["mode"] == name
        assert cls().row() == {"mode": name}
    assert UnicastMode().source_datagrams_per_chunk(40) == 40
    assert CoreCastMode().source_datagrams_per_chunk(40) == 41


def test_parse_modes_keeps_the_order_and_accepts_classes():
    assert parse_modes("corecast,unicast") == (CoreCastMode, UnicastMode)
    assert parse_modes(" unicast ") == (UnicastMode,)
    assert parse_modes([CoreCastMode, "unicast"]) == (CoreCastMode, UnicastMode)
    assert get_mode(CoreCastMode) is CoreCastMode
    assert selected_modes({}) == DEFAULT_MODES
    assert selected_modes({"modes": "corecast"}) == ("corecast",)


@pytest.mark.parametrize("value,needle", [
    ("multicast", "unknown mode 'multicast' (known: unicast, corecast"),
    ("unicast,bogus", "unknown mode 'bogus'"),
    ("unicast,unicast", "'unicast' twice"),
    (",", "at least one mode"),
    (3, "comma-separated list"),
    (True, "comma-separated list"),
])
def test_bad_modes_are_one_line_config_errors(value, needle):
    with pytest.raises(ConfigError) as err:
        parse_modes(value)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_every_experiment_accepts_modes_and_normalises_it():
    for name, module in EXPERIMENTS.items():
        assert parse_experiment_params(module, ["modes=corecast, unicast"])["modes"] == "corecast,unicast", name
        with pytest.raises(ConfigError, match="unknown mode 'ipx'"):
            parse_experiment_params(module, ["modes=ipx"])
    assert "modes" not in parse_experiment_params(EXPERIMENTS["smoke"], [])


def test_join_runs_one_fresh_network_per_selected_mode():
    p = parse_experiment_params(join, ["modes=corecast"])
    assert [(pt.label, pt.modes) for pt in join.points(p)] == [("join-corecast", ("corecast",))]
    assert [pt.modes for pt in join.points(parse_experiment_params(join, []))] == [("unicast",), ("corecast",)]
    assert Point("x", {}, 1.0).modes is None  # sweeps take the experiment's modes


def test_run_modes_streams_the_selected_modes_in_order():
    streamed = []

    class Net:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def stream(self, spec):
            streamed.append(spec.mode)
            return {"mode": spec.mode}

    class Ctx:
        params = {"modes": "corecast,unicast", "chunks": 10}

        def network(self, label, **topo):
            return Net()

        def spec(self, mode, **over):
            return StreamSpec(mode=mode, chunks=10)

        def record(self, row):
            pass

    rows = run_modes(Ctx(), "p")
    assert streamed == ["corecast", "unicast"] and [r["mode"] for r in rows] == streamed


def test_streamspec_takes_a_name_or_a_class_and_refuses_unknown_names():
    spec = StreamSpec(mode=CoreCastMode, chunks=5)
    assert spec.mode == "corecast" and spec.mode_cls is CoreCastMode
    assert StreamSpec(mode="unicast", chunks=5).mode_cls is UnicastMode
    assert StreamSpec(mode="ipmc", chunks=5).mode == "ipmc"
    with pytest.raises(ConfigError, match="unknown mode 'ipmcx'"):
        StreamSpec(mode="ipmcx", chunks=5)


def test_a_new_mode_is_a_registered_class_not_a_new_branch():
    class Doubled(UnicastModel):
        name = "doubled"

        def as_bytes(self, n, capable, chunk_bytes):
            return 2 * super().as_bytes(n, capable, chunk_bytes)

    class DoubledMode(Mode):
        name = "doubled"
        description = "every unicast copy twice (test only)"
        model = Doubled()
        source_mode = "unicast"

    register(DoubledMode)
    try:
        assert parse_modes("unicast,doubled")[1] is DoubledMode
        spec = StreamSpec(mode="doubled", chunks=3)
        assert spec.mode_cls.model.link_bytes([1], [True], 1316, _star(1))[("x1-core", "down")] == 2 * 1380
        with pytest.raises(ValueError, match="already registered"):
            register(type("Other", (Mode,), {"name": "doubled", "model": Doubled()}))
        with pytest.raises(ValueError, match="named Mode subclass"):
            register(int)  # type: ignore[arg-type]
    finally:
        MODES.pop("doubled", None)
    assert "doubled" not in MODES


def _star(n):
    from testbed.modemodels import CoreShape
    return CoreShape.star(n)


def test_cli_unknown_mode_exits_2_before_building_anything(tmp_path):
    out = tmp_path / "never"
    res = corecast("run", "smoke", "--out", str(out), "--set", "modes=unicast,ipmcx", timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.strip().count("\n") == 0 and "unknown mode 'ipmcx'" in res.stderr
    assert "Traceback" not in res.stderr and not os.path.exists(out)
