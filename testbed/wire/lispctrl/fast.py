"""Fast path for the Map-Server's commonest message: an ECM carrying a one-EID IPv4 Map-Request.

What every xTR of the testbed sends to resolve an EID (RFC 9301 sections 5.2 and
5.8): ECM header (4 bytes), inner IPv4 (20, no options) and UDP (8), then a
Map-Request with no Source-EID (AFI 0), one IPv4 ITR-RLOC and one IPv4 EID
record, nothing after it: exactly 60 bytes.

:func:`parse_ecm_request` reads that shape with one ``struct`` call and returns
what the Map-Server needs; for anything else (another size, type, AFI or count,
a probe, a Map-Reply record (M bit), bad IPv4/UDP lengths) it returns None and
the caller decodes the message in full with
:func:`testbed.wire.lispctrl.decode_control`, which stays the judge of every
malformed input. Whatever it accepts, the full decoder decodes to the same
values (tests/test_mapserver_fast.py checks this on the fuzz corpus).
"""

from __future__ import annotations

import struct

from testbed.wire.lispctrl.messages import REQ_M, REQ_P, TYPE_ECM, TYPE_MAP_REQUEST

ECM_REQUEST_LEN = 60
_SHAPE = struct.Struct("!B3x"  # ECM header: type
                       "BxH5xB10x"  # inner IPv4: version/IHL, total length, protocol
                       "HHH2x"  # UDP: source port, destination port, length
                       "IQHHIxBHI")  # Map-Request: word, nonce, Source-EID AFI, ITR-RLOC AFI + address, record
_PLEN_MASK = tuple((0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF for p in range(33))


def parse_ecm_request(buf: bytes | bytearray | memoryview) -> tuple[int, bytes, int, int, int] | None:
    """Return (nonce, ITR-RLOC as 4 bytes, inner UDP source port, EID address int, mask-len), or None.

    The EID address has its host bits cleared (as the full decoder's prefix text has).
    None: not the 60-byte shape described in the module docstring; decode in full.
    """
    if len(buf) != ECM_REQUEST_LEN:
        return None
    (ecm, vihl, total, proto, sport, _dport, ulen, word, nonce, src_afi, rloc_afi, rloc, plen, eid_afi,
     eid) = _SHAPE.unpack_from(buf, 0)
    if (ecm >> 4 != TYPE_ECM or vihl != 0x45 or total != 56 or proto != 17 or ulen != 36
            or word >> 28 != TYPE_MAP_REQUEST or word & (REQ_M | REQ_P) or word & 0x1FFF != 1
            or src_afi != 0 or rloc_afi != 1 or eid_afi != 1 or plen > 32):
        return None
    return nonce, rloc.to_bytes(4, "big"), sport, eid & _PLEN_MASK[plen], plen
