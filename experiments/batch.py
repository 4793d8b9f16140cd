"""batch: CoreCast with REF-LISTs (issue 15) against gamma: bytes per chunk on the source AS's uplink for
unicast, corecast (a REF per client), corecast-batch (the ITR batches) and corecast-src (the source reads the
mapping system), on the model's lines, with the floor j(48+P), one copy per receiving ETR, marked.

j client ASes (default 2, all capable) hold gamma clients each; every point streams every mode of the
``modes`` parameter (default the four) over one topology; delivery is checked chunk by chunk per client and
the measured core bytes must equal the model to the byte. ``corecast-src`` needs core=star.
"""

from __future__ import annotations

from typing import Any

from experiments import gamma
from experiments.common import report, run_sweep

DESCRIPTION = "REF-LISTs against gamma: unicast, corecast, corecast-batch, corecast-src, and the floor j(48+P)"
DEFAULTS: dict[str, Any] = {
    "ases": 2, "gammas": "1,10,100", "chunks": 20, "chunk_bytes": 1316, "bitrate": 1_000_000, "speed": 10.0,
    "max_pps": 15000, "content": "file", "client_hosts": "per-as",
}
MODES = "unicast,corecast,corecast-batch,corecast-src"
"""The modes streamed when ``modes`` is not set."""


def validate(params: dict[str, Any]) -> None:
    """The gamma experiment's checks (each gamma >= 1, distinct), with this experiment's default modes."""
    params.setdefault("modes", MODES)
    gamma.validate(params)


points = gamma.points
"""One point per gamma, as in the gamma experiment: k = round(gamma j) clients spread evenly over j ASes."""


def run(ctx: Any) -> int:
    """Sweep gamma, every mode per point; check delivery and measured == model; print the floor ratios."""
    rows, problems = run_sweep(ctx, points(ctx.params))
    code = report(ctx, rows, extra_problems=problems)
    for r in rows:
        floor = r["active_ases"] * (48 + r["chunk_bytes"]) if "active_ases" in r else None
        if floor and r["chunks"]:
            print(f"gamma {r['gamma']:>7.2f} {r['mode']:>15}: {r['core_bytes'] / r['chunks']:>10.0f} B/chunk, "
                  f"{r['core_bytes'] / r['chunks'] / floor:6.3f} x the floor j(48+P)")
    return code
