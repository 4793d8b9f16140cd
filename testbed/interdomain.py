"""Inter-domain traffic of one stream: the model per link for the audience the stream really had, links.csv rows.

:func:`audience_segments` turns the source record's join and leave events into runs
of chunks with one audience; :func:`model_link_bytes` applies a mode's model
(:class:`testbed.modemodels.ModeModel`) to each run, per inter-domain (link,
direction); :func:`write_link_rows` writes the measured counters beside the model
into ``links.csv`` and :func:`link_columns` sums them for ``measurements.csv``.
"""

from __future__ import annotations

from typing import Any, Iterable

from testbed.modemodels import DOWN, UP, CoreShape, LinkKey, ModeModel


def audience_segments(plan: Any, src_rec: Any) -> list[tuple[int, list[int]]]:
    """(chunks, clients per client AS) for each run of chunks with one audience, from the source record.

    A ``join`` at sequence s adds (EID, port) for chunks s on; a ``leave`` at s removes
    it from chunk s on (as :meth:`testbed.stream.records.SourceRecord.expected_mask`);
    the initial clients join at sequence 0. EIDs outside the plan's client ASes are ignored.
    """
    import numpy as np
    as_of = {eid: i for i, a in enumerate(plan.client_ases) for _h, eid in a.clients}
    seqs = np.asarray(src_rec.seqs)
    events = sorted((ev.seq, n, ev) for n, ev in enumerate(src_rec.events) if ev.eid in as_of)
    active: set[tuple[str, int]] = set()
    counts = [0] * len(plan.client_ases)
    out: list[tuple[int, list[int]]] = []
    lo: int | None = None
    i = 0
    bounds = sorted({seq for seq, _n, _ev in events} | {int(seqs.max()) + 1 if len(seqs) else 0})
    for b in bounds:
        n = int(((seqs < b) if lo is None else ((seqs >= lo) & (seqs < b))).sum())
        if n:
            out.append((n, list(counts)))
        while i < len(events) and events[i][0] == b:
            ev = events[i][2]
            key = (ev.eid, ev.port)
            if ev.kind == "join" and key not in active:
                active.add(key)
                counts[as_of[ev.eid]] += 1
            elif ev.kind == "leave" and key in active:
                active.discard(key)
                counts[as_of[ev.eid]] -= 1
            i += 1
        lo = b
    return out


def model_link_bytes(plan: Any, model: ModeModel, chunk_bytes: int, src_rec: Any,
                     shape: CoreShape | None = None) -> dict[LinkKey, int]:
    """The model's bytes per inter-domain (link, direction) over the stream, audience run by audience run."""
    from testbed.net.links import core_shape
    shape = shape or core_shape(plan)
    capable = plan.params.capable
    total = dict.fromkeys(shape.keys(), 0)
    for chunks, counts in audience_segments(plan, src_rec):
        for key, value in model.link_bytes(counts, capable, chunk_bytes, shape).items():
            total[key] += chunks * value
    return total


def write_link_rows(path: str, links: Iterable[Any], measured: dict[LinkKey, Any], model: dict[LinkKey, int],
                    label: dict[str, Any], captured: dict[LinkKey, Any] | None = None) -> list[dict[str, Any]]:
    """Append one links.csv row per link and direction (``label``: experiment, point, mode, stream); return them.

    ``measured`` and ``captured`` map (link, direction) to a
    :class:`testbed.net.links.LinkCount`; with ``captured`` the rows gain
    ``capture_bytes`` and ``capture_packets``.
    """
    from testbed.results import LINK_COLUMNS, Measurements
    rows = []
    for link in links:
        for d in (UP, DOWN):
            key = (link.name, d)
            got = measured[key]
            row = {**label, "link": link.name, "node": link.node, "interface": link.intf, "direction": d,
                   "bytes": got.bytes, "packets": got.packets, "model_bytes": model[key],
                   "control_bytes": got.control_bytes, "control_packets": got.control_packets}
            if captured:
                row.update(capture_bytes=captured[key].bytes, capture_packets=captured[key].packets)
            rows.append(row)
    Measurements(path, LINK_COLUMNS).extend(rows)
    return rows


def link_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """measurements.csv's inter-domain columns from one stream's links.csv rows.

    ``interdomain_bytes`` sums every link and direction (a packet counts once per link
    it crosses); ``max_link_bytes`` is the busiest (link, direction); the ``model_``
    columns are the same sums of the model; ``links_capture_mismatches`` counts rows
    whose capture (when there is one) differs from the counters.
    """
    measured = [r["bytes"] for r in rows]
    model = [r["model_bytes"] for r in rows]
    return {"interdomain_bytes": sum(measured), "interdomain_packets": sum(r["packets"] for r in rows),
            "max_link_bytes": max(measured, default=0),
            "model_interdomain_bytes": sum(model), "model_max_link_bytes": max(model, default=0),
            "links_capture_mismatches": sum(1 for r in rows if "capture_bytes" in r and
                                            (r["capture_bytes"], r["capture_packets"]) != (r["bytes"], r["packets"]))}
