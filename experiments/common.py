"""Pieces the experiments share: run both modes on one topology, print the table, check the rows."""

from __future__ import annotations

from typing import Any

MODES = ("unicast", "corecast")


def run_modes(ctx: Any, label: str, modes: tuple[str, ...] = MODES, extra_row: dict[str, Any] | None = None,
              spec_over: dict[str, Any] | None = None, **topo: Any) -> list[dict[str, Any]]:
    """Bring one topology up, stream once per mode, record and return the rows."""
    rows = []
    with ctx.network(label, **topo) as net:
        for mode in modes:
            row = net.stream(ctx.spec(mode, **(spec_over or {})))
            row.update(extra_row or {})
            ctx.record(row)
            rows.append(row)
    return rows


def model_error(row: dict[str, Any]) -> float:
    """Relative difference between measured and model core bytes."""
    model = row["model_core_bytes"]
    return abs(row["core_bytes"] - model) / model if model else float(row["core_bytes"] != 0)


def check_rows(rows: list[dict[str, Any]], tolerance: float = 0.001) -> list[str]:
    """Problems in measured rows: incomplete delivery, corruption, model mismatch, capture drops."""
    problems = []
    for r in rows:
        where = f"{r['point']} {r['mode']}"
        if r["delivered_chunks"] != r["expected_chunks"]:
            problems.append(f"{where}: delivered {r['delivered_chunks']} of {r['expected_chunks']} chunks")
        if r["corrupt_chunks"]:
            problems.append(f"{where}: {r['corrupt_chunks']} corrupt chunks")
        if model_error(r) > tolerance:
            problems.append(f"{where}: core bytes {r['core_bytes']} vs model {r['model_core_bytes']} "
                            f"({100 * model_error(r):.3f} % off)")
        if r.get("capture_dropped"):
            problems.append(f"{where}: the capture dropped {r['capture_dropped']} packets")
    return problems


def format_table(rows: list[dict[str, Any]]) -> str:
    """The summary table: mode, k, j, gamma, core MB, model MB, savings %, delivered."""
    head = f"{'point':<10} {'mode':<9} {'k':>6} {'j':>4} {'gamma':>7} {'core MB':>10} {'model MB':>10} " \
           f"{'savings':>8} {'delivered':>17}"
    lines = [head, "-" * len(head)]
    unicast = {r["point"]: r["core_bytes"] for r in rows if r["mode"] == "unicast"}
    for r in rows:
        base = unicast.get(r["point"])
        saving = f"{100 * (1 - r['core_bytes'] / base):7.1f}%" if base and r["mode"] != "unicast" else f"{'-':>8}"
        lines.append(f"{r['point']:<10} {r['mode']:<9} {r['clients']:>6} {r['active_ases']:>4} {r['gamma']:>7.2f} "
                     f"{r['core_bytes'] / 1e6:>10.3f} {r['model_core_bytes'] / 1e6:>10.3f} {saving} "
                     f"{r['delivered_chunks']:>8}/{r['expected_chunks']:<8}")
    return "\n".join(lines)


def report(ctx: Any, rows: list[dict[str, Any]], tolerance: float = 0.001) -> int:
    """Print the table and the verdict; return 0 if every row checks out, else 1."""
    print(format_table(rows))
    problems = check_rows(rows, tolerance)
    for p in problems:
        print(f"CHECK FAILED: {p}")
    if not problems:
        print(f"all {len(rows)} streams: every client received every chunk intact; measured core bytes equal "
              f"the model within {100 * tolerance:g} %")
    ctx.run.update(summary={"rows": len(rows), "problems": problems})
    return 1 if problems else 0
