"""The live stream: content producers, pacing, destination list, per-mode datagrams, records.

Sans-I/O pieces used by ``nodes/source.py`` and ``nodes/client.py``:
:mod:`~testbed.stream.pacer`, :mod:`~testbed.stream.destinations`,
:mod:`~testbed.stream.sender`; :mod:`~testbed.stream.content` runs ffmpeg or
reads a file; :mod:`~testbed.stream.records` reads and verifies what the
source sent and the clients received.
"""
