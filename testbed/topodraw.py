"""Drawing of an emulated network in the spirit of the paper's Figures 1 and 2.

``draw_topology(graph, path_stem)`` takes a JSON-able dict::

    {"title": "...",                                   # optional
     "nodes": [{"name": "x0", "kind": "xtr", "as": "AS0"}, ...],
     "links": [["src", "s0"], ["s0", "x0"], ...],
     "paths": {"data": ["src", "x0", "c0", "x1"],     # optional: one path (names) or a list of paths
               "ref":  [["src", "x0", "c0", "x2"], ...],
               "unicast": [["x1", "h1_0"], ...]},             # optional: full chunks (ETR to client, fallback)
     "capable": ["AS1", "AS2"]}                         # optional: CoreCast-capable client ASes

``kind`` is one of source, client, xtr, core, transit, ms, switch (a tree core's root is a
``core``, its transit routers ``transit``, drawn in a column right of the root). The source AS is drawn on
the left, the core and the mapping system in the middle, the client ASes stacked
on the right; each AS is a shaded box with its xTRs on the core-facing edge.
Large ASes show their first clients and "+N more"; beyond 8 client ASes the rest
are summarised. DATA paths are thick solid arrows, REF paths thin dashed ones,
unicast paths (full chunks) thin green arrows.
"""

from __future__ import annotations

import os
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch

KIND_STYLE = {
    "source": ("s", "#c0392b", 11),
    "client": ("o", "#27ae60", 8),
    "xtr": ("D", "#2471a3", 10),
    "core": ("h", "#7f8c8d", 14),
    "transit": ("h", "#95a5a6", 12),
    "ms": ("*", "#8e44ad", 16),
    "switch": ("s", "#bdc3c7", 7),
}
MAX_CLIENTS_SHOWN = 5
MAX_CLIENTS_SHOWN_MANY = 2  # per AS, when more than 4 client ASes are drawn
MAX_ASES_SHOWN = 8
PATH_STYLE = {"data": ("#2471a3", 2.4, "-", 0.09, "DATA"), "ref": ("#e67e22", 1.2, "--", -0.09, "REF"),
              "unicast": ("#27ae60", 1.2, "-", 0.0, "unicast (full chunk)")}


def _paths(value: Any) -> list[list[str]]:
    if not value:
        return []
    if all(isinstance(v, str) for v in value):
        return [list(value)]
    return [list(p) for p in value if isinstance(p, (list, tuple))]


def _layout(nodes: list[dict]) -> tuple[dict[str, tuple[float, float]], list[tuple[str, float, float, float, float]],
                                        list[tuple[float, float, str]]]:
    """Positions of the drawn nodes, the AS boxes (label, x0, y0, x1, y1) and extra labels."""
    by_as: dict[str, list[dict]] = {}
    middle: list[dict] = []
    for n in nodes:
        if n.get("kind") in ("core", "transit", "ms") or n.get("as") in (None, "", "core"):
            middle.append(n)
        else:
            by_as.setdefault(str(n["as"]), []).append(n)
    source_as = next((a for a, ns in by_as.items() if any(n.get("kind") == "source" for n in ns)), None)
    client_ases = [a for a in by_as if a != source_as]
    max_shown = MAX_CLIENTS_SHOWN if len(client_ases) <= 4 else MAX_CLIENTS_SHOWN_MANY
    pos: dict[str, tuple[float, float]] = {}
    boxes: list[tuple[str, float, float, float, float]] = []
    notes: list[tuple[float, float, str]] = []

    def place_as(name: str, members: list[dict], y_center: float, left: bool) -> float:
        hosts = [n for n in members if n.get("kind") in ("source", "client")]
        xtrs = [n for n in members if n.get("kind") == "xtr"]
        others = [n for n in members if n.get("kind") not in ("source", "client", "xtr")]
        shown = hosts[:max_shown]
        rows = max(len(shown) + (len(hosts) > len(shown)), len(xtrs), len(others), 1)
        height = 0.55 * rows + 0.5
        x_host, x_mid, x_xtr = (0.4, 1.5, 2.6) if left else (9.6, 8.5, 7.4)
        for col, x in ((shown, x_host), (others, x_mid), (xtrs, x_xtr)):
            for i, n in enumerate(col):
                pos[n["name"]] = (x, y_center + 0.55 * ((len(col) - 1) / 2 - i))
        if len(hosts) > len(shown):
            notes.append((x_host, y_center - 0.55 * (len(shown) - 1) / 2 - 0.2, f"+{len(hosts) - len(shown)} more"))
        x0, x1 = (0.0, 3.0) if left else (7.0, 10.6)
        boxes.append((name, x0, y_center - height / 2, x1, y_center + height / 2))
        return height

    heights = []
    y = 0.0
    for a in client_ases[:MAX_ASES_SHOWN]:
        hosts = sum(n.get("kind") == "client" for n in by_as[a])
        rows = max(min(hosts, max_shown) + (hosts > max_shown), 1,
                   sum(n.get("kind") == "xtr" for n in by_as[a]),
                   sum(n.get("kind") not in ("client", "xtr") for n in by_as[a]))
        h = 0.55 * rows + 0.5
        heights.append((a, y - h / 2))
        y -= h + 0.35
    total = -y - 0.35 if heights else 0.0
    for a, yc in heights:
        place_as(a, by_as[a], yc + total / 2, left=False)
    if len(client_ases) > MAX_ASES_SHOWN:
        notes.append((8.5, -total / 2 - 0.5, f"+{len(client_ases) - MAX_ASES_SHOWN} more client ASes"))
    if source_as is not None:
        place_as(source_as, by_as[source_as], 0.0, left=True)
    cores = [n for n in middle if n.get("kind") not in ("ms", "transit")]
    transits = [n for n in middle if n.get("kind") == "transit"]
    core_x = 4.3 if transits else 5.0  # a tree core: the root left of its column of transit routers
    for i, n in enumerate(cores):
        pos[n["name"]] = (core_x, 0.9 * ((len(cores) - 1) / 2 - i))
    for i, n in enumerate(transits):
        pos[n["name"]] = (5.8, 1.1 * ((len(transits) - 1) / 2 - i))
    top = max([p[1] for p in pos.values()] + [0.0])
    for i, n in enumerate(n for n in middle if n.get("kind") == "ms"):
        pos[n["name"]] = (5.0 + 1.2 * i, top + 1.0)
    return pos, boxes, notes


def draw_topology(graph: dict, path_stem: str) -> list[str]:
    """Draw ``graph`` (see the module docstring) to ``path_stem``.png and .pdf; return the paths.

    Links or paths naming nodes that are not drawn (summarised clients or ASes) are skipped.
    Raises ValueError if ``graph`` has no node list.
    """
    nodes = graph.get("nodes")
    if not isinstance(nodes, list) or not all(isinstance(n, dict) and "name" in n for n in nodes):
        raise ValueError("topology graph needs 'nodes': a list of objects with a 'name'")
    pos, boxes, notes = _layout(nodes)
    kind = {n["name"]: n.get("kind", "switch") for n in nodes}
    capable = set(map(str, graph["capable"])) if isinstance(graph.get("capable"), list) else None
    client_as_names = {str(n.get("as")) for n in nodes if n.get("kind") == "client"}
    source_ases = {str(n.get("as")) for n in nodes if n.get("kind") == "source"}
    ys = [p[1] for p in pos.values()] + [b[2] for b in boxes] + [b[4] for b in boxes] + [0.0]
    height = max(ys) - min(ys) + 1.5
    fig = Figure(figsize=(10, max(3.5, min(16.0, 0.8 * height))))
    ax = fig.add_subplot()
    for i, (name, x0, y0, x1, y1) in enumerate(boxes):
        ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.05,rounding_size=0.2",
                                    fc="#eaf2f8" if i % 2 else "#f4f6f7", ec="0.6", zorder=0))
        if name in source_ases:
            name = f"{name} (source)"
        elif capable is not None and name in client_as_names:
            name = f"{name} (CoreCast)" if name in capable else f"{name} (unicast only)"
        ax.text(x0 + 0.1, y1 - 0.05, name, fontsize=8, va="top", color="0.3", zorder=1)
    if any(kind[n] == "core" for n in pos):
        cy = [p[1] for n, p in pos.items() if kind[n] in ("core", "transit")]
        ax.add_patch(FancyBboxPatch((3.9, min(cy) - 0.6), 2.2, max(cy) - min(cy) + 1.2,
                                    boxstyle="round,pad=0.05,rounding_size=0.5", fc="#fdfefe", ec="0.5",
                                    ls=":", zorder=0))
        ax.text(5.0, min(cy) - 0.75, "core (RLOC space)", ha="center", va="top", fontsize=8, color="0.3")
    for link in graph.get("links", []):
        if len(link) >= 2 and link[0] in pos and link[1] in pos:
            (xa, ya), (xb, yb) = pos[link[0]], pos[link[1]]
            ax.plot([xa, xb], [ya, yb], "-", color="0.7", lw=1, zorder=1)
    handles = []
    for key, (color, lw, ls, off, label) in PATH_STYLE.items():
        drawn = False
        for path in _paths((graph.get("paths") or {}).get(key)):
            for a, b in zip(path, path[1:]):
                if a in pos and b in pos:
                    (xa, ya), (xb, yb) = pos[a], pos[b]
                    ax.annotate("", (xb, yb + off), (xa, ya + off), zorder=3,
                                arrowprops={"arrowstyle": "-|>", "color": color, "lw": lw, "ls": ls,
                                            "shrinkA": 6, "shrinkB": 6})
                    drawn = True
        if drawn:
            handles.append(Line2D([], [], color=color, lw=lw, ls=ls, label=label))
    for name, (x, y) in pos.items():
        marker, color, size = KIND_STYLE.get(kind[name], ("o", "0.5", 8))
        ax.plot(x, y, marker, color=color, ms=size, mec="k", mew=0.6, zorder=4)
        if kind[name] in ("client", "source"):  # beside the marker: host columns are dense
            right = kind[name] == "client"
            ax.annotate(name, (x, y), xytext=(8 if right else -8, 0), textcoords="offset points",
                        ha="left" if right else "right", va="center", fontsize=6.5, zorder=5)
        else:
            ax.annotate(name, (x, y), xytext=(0, -11), textcoords="offset points", ha="center", va="top",
                        fontsize=6.5, zorder=5)
    for x, y, text in notes:
        ax.text(x, y, text, ha="center", va="top", fontsize=7, style="italic", color="0.3")
    order = list(KIND_STYLE)
    kinds = sorted({kind[n] for n in pos}, key=lambda k: (order.index(k) if k in order else len(order), k))
    handles += [Line2D([], [], ls="", marker=KIND_STYLE.get(k, ("o", "0.5", 8))[0],
                       color=KIND_STYLE.get(k, ("o", "0.5", 8))[1], mec="k", label=k) for k in kinds]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_xlim(-0.9, 10.8)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.6)
    ax.set_aspect("equal", adjustable="box")
    ax.axis("off")
    if graph.get("title"):
        ax.set_title(str(graph["title"]))
    directory = os.path.dirname(os.path.abspath(path_stem))
    os.makedirs(directory, exist_ok=True)
    out = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = f"{path_stem}.{ext}"
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata=meta)
        out.append(path)
    return out
