"""Wire formats: fast codecs (struct/memoryview) used by the daemons.

The scapy layers describing the same formats live in :mod:`testbed.layers`;
tests keep both byte-identical.
"""

from testbed.wire.errors import DecodeError

__all__ = ["DecodeError"]
