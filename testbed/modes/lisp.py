"""The LISP delivery modes: ``unicast`` (the baseline), ``corecast`` (the paper), and issue 15's
``corecast-batch`` (REF-LISTs made by the ITR) and ``corecast-src`` (REF-LISTs made by the source)."""

from __future__ import annotations

from testbed.modemodels import MODELS
from testbed.modes.base import Mode


class UnicastMode(Mode):
    """One LISP-encapsulated copy of each chunk per client, from the source's ITR."""

    name = "unicast"
    description = "one LISP-encapsulated copy per client (the baseline)"
    model = MODELS["unicast"]
    source_mode = "unicast"


class CoreCastMode(Mode):
    """CoreCast: one DATA per capable ETR with clients and one REF per client; unicast to non-capable ASes."""

    name = "corecast"
    description = "one DATA per capable ETR + one REF per client (the paper)"
    model = MODELS["corecast"]
    source_mode = "corecast"


class CoreCastBatchMode(Mode):
    """CoreCast with the ITR batching one chunk's REFs into one REF-LIST per ETR (REFs with flag B)."""

    name = "corecast-batch"
    description = "corecast, the ITR sends one REF-LIST per ETR instead of a REF per client"
    model = MODELS["corecast-batch"]
    source_mode = "corecast-batch"
