"""loss: random loss on the core links (nftables in the core routers) and what each mode's clients lose.

One network (default: star core, 4 ASes x 10 clients, one host per AS) streams
every mode at each loss rate (``losses`` in per mille: 0, 1, 10, 50 = 0, 0.1, 1,
5 %), the rule set in every core router's namespace by :mod:`testbed.net.loss`
(``numgen random mod 1000 < N drop``; LISP control exempt). Losses are results, not
failures: per client the share of chunks it lost (``loss_clients.csv``), per stream
the mean, and the per-chunk loss correlation of two clients of one AS and of two
clients of different ASes, beside :mod:`testbed.lossmodel` (in CoreCast a lost DATA
costs every client behind that ETR the chunk). A stream still fails on a corrupt
chunk, on source-uplink bytes off the model, and at loss 0 on any missing chunk.
"""

from __future__ import annotations

import csv
import os
import shutil
from typing import Any

import numpy as np

from experiments.common import check_rows, model_error, parse_list, reject_swept, stream_speed
from experiments.compare import modes_of
from testbed.lossmodel import predict
from testbed.nodeutil import ConfigError

DESCRIPTION = "random loss on core links (0, 0.1, 1, 5 %): per-client losses and their correlation within an AS, per mode"
DEFAULTS: dict[str, Any] = {
    "ases": 4, "clients": 10, "losses": "0,1,10,50", "core": "star", "chunks": 200, "chunk_bytes": 1316,
    "bitrate": 1_000_000, "speed": 10.0, "max_pps": 15000, "content": "file", "client_hosts": "per-as",
    "max_pairs": 2000, "pair_seed": 1,
}
CLIENTS_CSV = "loss_clients.csv"
CLIENT_COLUMNS = ("point", "mode", "loss_permille", "as", "eid", "expected", "delivered", "lost", "corrupt",
                  "loss_share")


def validate(params: dict[str, Any]) -> None:
    """Check the loss list (whole per mille, 0..1000, each once) and the core (star or tree)."""
    reject_swept(params, DEFAULTS, ("total", "distribution"), "choose ases=J clients=N")
    params["losses"] = parse_list(params["losses"], "losses", int, 0, 1000)
    if len(set(params["losses"])) != len(params["losses"]):
        raise ConfigError("losses lists a value twice")
    if params["core"] not in ("star", "tree"):
        raise ConfigError(f"core must be star or tree, got '{params['core']}'")
    if not 1 <= params["max_pairs"] <= 1_000_000:
        raise ConfigError(f"max_pairs must be within 1..1000000, got {params['max_pairs']}")


def loss_matrix(src: Any, receipts: dict[str, Any], eids: list[str]) -> np.ndarray:
    """(clients x chunks) booleans: True where a client did not receive the chunk's digest."""
    out = np.ones((len(eids), len(src)), dtype=bool)
    for i, eid in enumerate(eids):
        rec = receipts.get(eid)
        if rec is not None and len(rec):
            out[i] = ~np.isin(src.digests, rec.digests)
    return out


def correlations(lost: np.ndarray, as_of: list[int], max_pairs: int, seed: int) -> tuple[float, float, int, int]:
    """Mean per-chunk loss correlation (Pearson) of client pairs in one AS and across ASes, and pair counts.

    Pairs where a client lost nothing (no variance) are left out; NaN if no pair is left.
    At most ``max_pairs`` pairs of each kind, drawn with ``seed``.
    """
    n = lost.shape[0]
    rng = np.random.default_rng(seed)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    if len(pairs) > 4 * max_pairs:
        pairs = [tuple(p) for p in rng.choice(pairs, 4 * max_pairs, replace=False)]
    within = [p for p in pairs if as_of[p[0]] == as_of[p[1]]][:max_pairs]
    across = [p for p in pairs if as_of[p[0]] != as_of[p[1]]][:max_pairs]
    x = lost.astype(float)
    sd = x.std(axis=1)

    def mean_corr(ps: list) -> tuple[float, int]:
        vals = [float(np.mean((x[a] - x[a].mean()) * (x[b] - x[b].mean())) / (sd[a] * sd[b]))
                for a, b in ps if sd[a] > 0 and sd[b] > 0]
        return (float(np.mean(vals)) if vals else float("nan")), len(vals)

    cw, nw = mean_corr(within)
    ca, na = mean_corr(across)
    return cw, ca, nw, na


def analyse(ctx: Any, net: Any, tag: str, row: dict[str, Any], permille: int) -> list[dict[str, Any]]:
    """Loss columns for ``row`` (in place) and one dict per client, from the stream's records."""
    from testbed.stream.records import read_client_records, read_source_record
    rec_dir = os.path.join(ctx.run.path, "records", tag)
    src = read_source_record(os.path.join(rec_dir, "source.csv"))
    receipts = read_client_records([os.path.join(rec_dir, f) for f in sorted(os.listdir(rec_dir))
                                    if f.endswith(".bin")])
    clients = [(a, eid) for a, _h, eid in net.plan.clients()]
    eids = [eid for _a, eid in clients]
    as_of = [int(getattr(a, "number", a)) for a, _eid in clients]
    lost = loss_matrix(src, receipts, eids)
    share = lost.mean(axis=1) if lost.size else np.zeros(len(eids))
    cw, ca, nw, na = correlations(lost, as_of, ctx.params["max_pairs"], ctx.params["pair_seed"])
    pred = predict(row["mode"], permille / 1000.0)
    row.update(loss_permille=permille, client_loss_mean=round(float(share.mean()), 6) if len(share) else 0.0,
               client_loss_min=round(float(share.min()), 6) if len(share) else 0.0,
               client_loss_max=round(float(share.max()), 6) if len(share) else 0.0,
               corr_within_as=round(cw, 4), corr_across_as=round(ca, 4), pairs_within=nw, pairs_across=na,
               model_client_loss=round(pred.client_loss, 6), model_corr_within=round(pred.corr_within, 4),
               model_corr_across=round(pred.corr_across, 4), unique_digests=int(len(set(src.digests.tolist()))))
    per = net.last_report.eids
    out = []
    for i, (a, eid) in enumerate(clients):
        d = per.get(eid)
        out.append({"point": row["point"], "mode": row["mode"], "loss_permille": permille, "as": as_of[i],
                    "eid": eid, "expected": d.expected if d else 0, "delivered": d.delivered if d else 0,
                    "lost": d.lost if d else 0, "corrupt": d.corrupt if d else 0,
                    "loss_share": round(float(share[i]), 6)})
    if not ctx.user_keeps_records:
        shutil.rmtree(rec_dir, ignore_errors=True)
    return out


def check_loss_rows(rows: list[dict[str, Any]]) -> list[str]:
    """Loss 0: every check of :func:`check_rows`. Loss > 0: corrupt chunks, source-uplink model, capture drops."""
    problems = check_rows([r for r in rows if r["loss_permille"] == 0])
    for r in (r for r in rows if r["loss_permille"] > 0):
        where = f"{r['point']} {r['mode']}"
        if r["corrupt_chunks"]:
            problems.append(f"{where}: {r['corrupt_chunks']} corrupt chunks")
        if model_error(r) > 0.001:
            problems.append(f"{where}: source uplink bytes {r['core_bytes']} vs model {r['model_core_bytes']}")
        if r.get("capture_dropped"):
            problems.append(f"{where}: the capture dropped {r['capture_dropped']} packets")
    return problems


def run(ctx: Any) -> int:
    """Every loss rate x every mode on one network; rows with the loss columns, a CSV per client."""
    from testbed.net.loss import core_routers, install, read_lost
    p = ctx.params
    ctx.user_keeps_records = ctx.keep_records
    ctx.keep_records = True  # analyse() reads the records, then removes them unless the user asked to keep them
    topo = {"ases": p["ases"], "clients": p["clients"], "core": p["core"]}
    rows, problems, clients_out = [], [], []
    try:
        with ctx.network(f"{p['core']}-loss", **topo) as net:
            k = len(net.plan.clients())
            speed = stream_speed(p, k + 1)
            routers = core_routers(net.plan)
            for permille in ctx.points(sorted(p["losses"]), label="loss rates"):
                install(net.tb, routers, permille)
                for mode in modes_of(p):
                    net.label = f"{p['core']}-l{permille}"
                    tag = f"{net.label}-{mode}"
                    before = sum(read_lost(net.tb, routers).values())
                    try:
                        row = net.stream(ctx.spec(mode, speed=speed))
                    except ConfigError as exc:
                        print(f"SKIPPED: {tag}: {exc}", flush=True)
                        continue
                    except Exception as exc:  # keep the other modes and rates
                        problems.append(f"{tag}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                        print(f"MODE FAILED: {problems[-1]}", flush=True)
                        continue
                    row["core"] = p["core"]
                    row["dropped_datagrams"] = sum(read_lost(net.tb, routers).values()) - before
                    clients_out += analyse(ctx, net, tag, row, permille)
                    ctx.record(row)
                    rows.append(row)
                    print(_line(row), flush=True)
            install(net.tb, routers, 0)
    finally:
        ctx.keep_records = ctx.user_keeps_records
    write_clients(os.path.join(ctx.run.path, CLIENTS_CSV), clients_out)
    problems += check_loss_rows(rows)
    for pr in problems:
        print(f"CHECK FAILED: {pr}")
    if not problems:
        print(f"all {len(rows)} streams: no corrupt chunk, source-uplink bytes equal the model, "
              "every chunk delivered at loss 0; losses per client in " + CLIENTS_CSV)
    ctx.run.update(summary={"rows": len(rows), "problems": problems})
    return 1 if problems else 0


def write_clients(path: str, rows: list[dict[str, Any]]) -> None:
    """Write the per-client losses (columns :data:`CLIENT_COLUMNS`)."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CLIENT_COLUMNS)
        w.writeheader()
        w.writerows(rows)


def _line(r: dict[str, Any]) -> str:
    return (f"loss {r['loss_permille'] / 10:>4g} % {r['mode']:<15} client loss {100 * r['client_loss_mean']:6.2f} % "
            f"(model {100 * r['model_client_loss']:6.2f} %), corr within AS {r['corr_within_as']:6.3f} "
            f"(model {r['model_corr_within']:6.3f}), across {r['corr_across_as']:6.3f}; "
            f"dropped {r['dropped_datagrams']}")
