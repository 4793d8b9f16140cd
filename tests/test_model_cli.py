"""``corecast model``: the vectorized model equals testbed.model, the CSV format, and every bad input is one line, exit 2."""

from __future__ import annotations

import csv
import os
import random

import numpy as np
import pytest

from testbed import model
from testbed.cli import build_parser, main
from testbed.modelcli import build_points, emulated_points, write_csv_atomic
from testbed.modelscale import Spread, capable_flags, evaluate, uniform_spread, zipf_spread
from testbed.modemodels import MODELS
from testbed.params import uniform_counts, zipf_counts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "clients_per_as.csv")
P = 1316


def run_model(args: list[str], capsys) -> tuple[int, str, str]:
    """``corecast model ARGS`` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(["model", *args])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ the model, vectorized

def test_vectorized_equals_the_model_for_every_mode():
    rng = random.Random(16)
    for _ in range(150):
        j = rng.randint(0, 25)
        counts = [rng.choice([0, 0, 1, 2, 3, 7, 238, 239, 500]) for _ in range(j)]
        cap = [rng.random() < 0.7 for _ in range(j)]
        chunk = rng.choice([1200, 1316, 1400])
        results = evaluate(Spread(np.array(counts, dtype=np.int64), np.array(cap, dtype=bool)), chunk)
        assert [r.mode for r in results] == list(MODELS)
        for r in results:
            links = model.link_bytes_per_chunk(r.mode, counts, cap, chunk)
            expected = (model.core_bytes_per_chunk(r.mode, counts, cap, chunk),
                        model.core_packets_per_chunk(r.mode, counts, cap),
                        model.interdomain_bytes(links), model.max_link_bytes(links))
            assert (r.uplink_bytes, r.uplink_packets, r.interdomain_bytes, r.max_link_bytes) == expected, \
                (r.mode, counts, cap)


def test_internet_scale_values():
    spread = Spread(uniform_spread(10_000_000, 70_000), capable_flags(70_000, 1.0))
    res = {r.mode: r for r in evaluate(spread, P)}
    assert res["unicast"].uplink_bytes == 10_000_000 * (64 + P)
    assert res["corecast"].uplink_bytes == 70_000 * (48 + P) + 68 * 10_000_000
    counts = uniform_counts(10_000_000, 70_000)  # 60,000 ASes of 143 clients and 10,000 of 142
    for mode in ("corecast-batch", "corecast-src"):  # the model itself, on the full 70,000-AS list
        assert res[mode].uplink_bytes == model.core_bytes_per_chunk(mode, counts, None, P)
    assert res["lispmc"].uplink_bytes == 70_000 * (64 + P)
    assert res["ipmc"].uplink_bytes == 28 + P and res["ipmc"].interdomain_bytes == 70_001 * (28 + P)
    assert res["corecast"].interdomain_bytes == 2 * res["corecast"].uplink_bytes


def test_spreads_are_the_experiments():
    for total, ases, s, seed in ((1000, 10, 1.0, 1), (5000, 37, 0.8, 7), (20_000, 300, 1.3, 42)):
        assert zipf_spread(total, ases, s, seed).tolist() == zipf_counts(total, ases, s, seed)
    assert uniform_spread(103, 10).tolist() == uniform_counts(103, 10)
    assert capable_flags(10, 0.34).tolist() == [True] * 3 + [False] * 7


# ------------------------------------------------------------------ the verb

def test_example_csv_prints_and_plots(tmp_path, capsys):
    code, out, err = run_model(["--csv", EXAMPLE, "--out", str(tmp_path)], capsys)
    assert code == 0, err
    # 3,211 clients; capable ASes with clients: 1200 800 450 210 120 40 12 3; non-capable: 300 75 1
    unicast = 3211 * (64 + P)
    corecast = 8 * (48 + P) + 68 * 2835 + 376 * (64 + P)
    assert f"{unicast:,}" in out and f"{corecast:,}" in out
    rows = read_rows(tmp_path / "model.csv")
    by_mode = {r["mode"]: r for r in rows}
    assert list(by_mode) == list(MODELS)
    assert int(by_mode["unicast"]["uplink_bytes"]) == unicast
    assert int(by_mode["corecast"]["uplink_bytes"]) == corecast
    assert float(by_mode["corecast"]["savings"]) == pytest.approx(1 - corecast / unicast, abs=1e-6)
    assert by_mode["corecast"]["ases"] == "12" and by_mode["corecast"]["active_ases"] == "11"
    assert by_mode["corecast"]["capable_ases"] == "9" and by_mode["corecast"]["distribution"] == "csv"
    for ext in ("png", "pdf"):
        assert (tmp_path / f"model.{ext}").stat().st_size > 1000
    assert sorted(os.listdir(tmp_path)) == ["model.csv", "model.pdf", "model.png"]  # no temporary file left


def test_gamma_sweep_zipf_and_modes(tmp_path, capsys):
    code, out, err = run_model(["--set", "ases=1000", "--set", "gamma=1,10,100", "--set", "distribution=zipf",
                                "--set", "zipf_s=0.9", "--set", "seed=3", "--set", "modes=corecast,lispmc",
                                "--out", str(tmp_path), "--no-plot"], capsys)
    assert code == 0, err
    rows = read_rows(tmp_path / "model.csv")
    assert [r["mode"] for r in rows] == ["unicast", "corecast", "lispmc"] * 3  # unicast always, for the savings
    assert [int(r["clients"]) for r in rows[::3]] == [1000, 10_000, 100_000]
    counts = zipf_counts(10_000, 1000, 0.9, 3)
    cc = model.core_bytes_per_chunk("corecast", counts, None, P)
    assert int(rows[4]["uplink_bytes"]) == cc and rows[4]["zipf_s"] == "0.9" and rows[4]["seed"] == "3"
    assert not (tmp_path / "model.png").exists()


@pytest.mark.parametrize("value, capable_ases", [("none", 0), ("all", 4), ("0.5", 2), ("false", 0)])
def test_capable_values(value, capable_ases, tmp_path, capsys):
    code, _out, err = run_model(["--set", "ases=4", "--set", "clients=0,8", "--set", f"capable={value}",
                                 "--no-plot", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    rows = {(r["mode"], r["clients"]): r for r in read_rows(tmp_path / "model.csv")}
    assert {r["capable_ases"] for r in rows.values()} == {str(capable_ases)}
    assert rows[("corecast", "0")]["uplink_bytes"] == "0" and rows[("unicast", "0")]["savings"] == "0.0"
    uni = int(rows[("unicast", "8")]["uplink_bytes"])
    expected = capable_ases * (48 + P + 2 * 68) + (4 - capable_ases) * 2 * (64 + P)
    assert int(rows[("corecast", "8")]["uplink_bytes"]) == expected and uni == 8 * (64 + P)


def test_emulated_points_mark_rows_confirmed(tmp_path, capsys):
    ref = tmp_path / "ref" / "gamma"
    ref.mkdir(parents=True)
    cols = ["experiment", "point", "mode", "ases", "capable_ases", "clients", "chunk_bytes", "chunks", "core_bytes",
            "model_core_bytes", "delivered_chunks", "expected_chunks", "clients_per_as"]
    good_uni = ["gamma", "g10", "unicast", "10", "10", "100", "1316", "2", str(2 * 100 * 1380), str(2 * 100 * 1380),
                "200", "200", " ".join(["10"] * 10)]
    good_cc = ["gamma", "g10", "corecast", "10", "10", "100", "1316", "2", "30000", "30000", "200", "200",
               " ".join(["10"] * 10)]
    lossy = ["gamma", "g5", "corecast", "10", "10", "50", "1316", "2", "20000", "20000", "99", "100", ""]
    skewed = ["distribution", "z", "corecast", "10", "10", "50", "1316", "2", "30000", "30000", "100", "100",
              "41 1 1 1 1 1 1 1 1 1"]  # the same j and k as the uniform point of 50, another spread
    with open(ref / "measurements.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerows([cols, good_uni, good_cc, lossy, skewed])
    (tmp_path / "ref" / "broken").mkdir()
    (tmp_path / "ref" / "broken" / "measurements.csv").write_bytes(b"\xff\xfe\0junk")
    emulated = emulated_points(str(tmp_path / "ref"))
    assert [(e["mode"], e["clients"], e["even"]) for e in emulated] == [("unicast", 100, True),
                                                                        ("corecast", 100, True),
                                                                        ("corecast", 50, False)]
    from testbed.modelcli import model_command
    assert model_command(["ases=10", "clients=100,50"], out=str(tmp_path / "out"), plot=True,
                         reference=str(tmp_path / "ref")) == 0
    rows = read_rows(tmp_path / "out" / "model.csv")
    confirmed = {(r["mode"], r["clients"]) for r in rows if r["confirmed"] == "True"}
    assert confirmed == {("unicast", "100"), ("corecast", "100")}
    assert (tmp_path / "out" / "model.png").exists()


def test_the_scale_runs_in_subdirectories_count_as_emulated():
    """results/reference/scale keeps one run per directory (scale/j1000g100/...): the model's confirmed range
    reaches j = 1,000 and k = 100,000 only if those are read too."""
    emulated = emulated_points()
    big = [e for e in emulated if e["experiment"] == "scale" and e["clients"] == 100_000]
    assert big and big[0]["ases"] == 1000 and big[0]["even"] and big[0]["mode"] == "corecast"
    assert {e["experiment"] for e in emulated} >= {"gamma", "scale"}


def test_csv_is_written_atomically(tmp_path):
    path = str(tmp_path / "model.csv")
    write_csv_atomic(path, [])
    before = open(path).read()
    with pytest.raises(ValueError):
        write_csv_atomic(path, [{"not a column": 1}])
    assert open(path).read() == before and os.listdir(tmp_path) == ["model.csv"]


def test_help_names_the_verb(capsys):
    text = build_parser().format_help()
    assert "model" in text and "corecast model --set ases=70000" in text
    with pytest.raises(SystemExit):
        main(["model", "--help"])
    assert "--csv FILE" in capsys.readouterr().out


# ------------------------------------------------------------------ bad CSVs: one line, exit 2, per kind

BAD_CSVS = {
    "missing_column": (b"as,count\nA,1\n", "no column 'clients'"),
    "negative": (b"as,clients\nA,1\nB,-3\n", "line 3: negative client count -3"),
    "not_whole": (b"as,clients\nA,1.5\n", "line 2: client count '1.5' is not a whole number"),
    "not_a_number": (b"as,clients\nA,lots\n", "client count 'lots' is not a whole number"),
    "duplicate_as": (b"as,clients\nA,1\nB,2\nA,3\n", "line 4: AS 'A' is listed twice (first on line 2)"),
    "empty": (b"", "the file is empty"),
    "blank_lines_only": (b"\n\n  \n", "no header"),
    "header_only": (b"as,clients\n", "a header but no ASes"),
    "binary_junk": (bytes(range(256)) * 8, "binary data"),
    "not_utf8": (b"as,clients\n\xe9t\xe9,3\n", "not UTF-8 text"),
    "fields": (b"as,clients\nA,1,2\n", "line 2: 3 fields, the header has 2"),
    "empty_as": (b"as,clients\n ,1\n", "line 2: empty AS"),
    "bad_capable": (b"as,clients,capable\nA,1,maybe\n", "capable must be yes or no"),
    "header_twice": (b"as,clients,as\nA,1,B\n", "a column is named twice"),
    "too_many_clients": (b"as,clients\nA,9999999\nB,2\n", "more than 10,000,000 clients"),
    "quote": (b'as,clients\n"A,1\n', "line"),
}


@pytest.mark.parametrize("kind", sorted(BAD_CSVS))
def test_bad_csv_is_one_line_exit_2(kind, tmp_path, capsys):
    data, needle = BAD_CSVS[kind]
    path = tmp_path / "in.csv"
    path.write_bytes(data)
    code, out, err = run_model(["--csv", str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("corecast: --csv "), err
    assert needle in err, err
    assert not (tmp_path / "out").exists()


def test_bad_csv_files_one_line_exit_2(tmp_path, capsys):
    huge = tmp_path / "huge.csv"
    with open(huge, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: the size alone is refused
    many = tmp_path / "many.csv"
    many.write_text("as,clients\n" + "".join(f"A{i},1\n" for i in range(70_001)))
    for path, needle in ((huge, "too large"), (many, "more than 70,000 ASes"), (tmp_path, "not a regular file"),
                         (tmp_path / "missing.csv", "No such file")):
        code, _out, err = run_model(["--csv", str(path), "--no-plot", "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and err.count("\n") == 1 and needle in err, (path, err)


# ------------------------------------------------------------------ bad arguments: one line, exit 2, per kind

BAD_ARGS = {
    "unknown_key": (["--set", "as=3"], "no parameter 'as'"),
    "ases_zero": (["--set", "ases=0"], "ases must be within 1..70,000"),
    "ases_too_many": (["--set", "ases=70001"], "ases must be within 1..70,000"),
    "ases_fraction": (["--set", "ases=2.5"], "ases must be whole numbers"),
    "clients_negative": (["--set", "clients=-1"], "clients must be within 0..10,000,000"),
    "clients_too_many": (["--set", "ases=10", "--set", "clients=10000001"], "clients must be within"),
    "gamma_too_large": (["--set", "ases=70000", "--set", "gamma=200"], "gamma 200 with 70,000 ASes is 14,000,000"),
    "gamma_and_clients": (["--set", "gamma=1", "--set", "clients=5"], "not both"),
    "gamma_junk": (["--set", "gamma=1,x"], "gamma must be a number or a list"),
    "gamma_twice": (["--set", "gamma=1,2,1"], "gamma lists a value twice"),
    "gamma_nan": (["--set", "gamma=nan"], "not a finite number"),
    "distribution": (["--set", "distribution=fixed"], "distribution must be uniform or zipf"),
    "zipf_s": (["--set", "distribution=zipf", "--set", "zipf_s=0"], "zipf_s must be within"),
    "seed_without_zipf": (["--set", "seed=2"], "zipf_s and seed need distribution=zipf"),
    "capable": (["--set", "capable=2"], "capable must be all, none or a fraction"),
    "modes": (["--set", "modes=corecast,multicast"], "unknown mode 'multicast'"),
    "chunk": (["--set", "chunk_bytes=0"], "chunk_bytes must be within 1..65,000"),
    "points": (["--set", "ases=1,2,3,4,5,6,7,8,9,10,11", "--set", "clients=" + ",".join(map(str, range(20)))],
               "220 points: at most 200"),
    "csv_and_ases": (["--csv", EXAMPLE, "--set", "ases=3"], "--csv gives the clients per AS: drop --set ases"),
    "csv_and_capable": (["--csv", EXAMPLE, "--set", "capable=0.5"], "has a capable column"),
    "malformed_set": (["--set", "ases"], "malformed --set"),
    "unknown_option": (["--bogus"], "unrecognized arguments"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ARGS))
def test_bad_arguments_are_one_line_exit_2(kind, tmp_path, capsys):
    args, needle = BAD_ARGS[kind]
    code, _out, err = run_model(args + ["--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert needle in err, err
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_directory(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    code, _out, err = run_model(["--set", "ases=2", "--set", "clients=4", "--out", str(f / "sub")], capsys)
    assert code == 2 and err.count("\n") == 1 and "is not a directory" in err, err


def test_build_points_defaults_reach_internet_scale():
    points, chunk, modes = build_points({}, None)
    assert chunk == 1316 and modes == tuple(MODELS)
    assert {p.spread.ases for p in points} == {70_000}
    assert max(p.spread.clients for p in points) == 9_940_000
