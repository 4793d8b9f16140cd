"""A mode's own data on the wire (not LISP), as one description with three renderings that agree.

Most modes' data crosses inter-domain links as LISP data (UDP 4341), which the
links' nftables counters, their tcpdump captures and :func:`testbed.decode.count_capture`
all recognise. A mode whose data is not LISP-encapsulated (``ipmc``: native IP multicast)
describes its packets once, as a :class:`DataMatch`, and every counter derives its rule from it:

```python
m = DataMatch("232.2.2.2", 6000)
m.nft()     # 'ip daddr 232.2.2.2 udp dport 6000'                (testbed.net.links counters)
m.bpf()     # '(udp and dst net 232.2.2.2/32 and dst port 6000)'  (testbed.net.capture filters)
m.matches(ip_header_and_udp, 0)  # True for such a packet      (testbed.decode.count_capture)
```
The three agree on every IPv4 packet: destination address within ``daddr`` (an address
or a prefix), protocol UDP, UDP destination port ``dport``; a non-first IP fragment
(no UDP header) never matches, as in nft (transport matches need the header) and in
BPF (``dst port`` checks the fragment offset). Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Iterable

from testbed.wire.constants import LISP_CONTROL_PORT, LISP_DATA_PORT

_IPPROTO_UDP = 17


@dataclass(frozen=True)
class DataMatch:
    """IPv4 UDP packets to ``daddr`` (address or prefix) and destination port ``dport``.

    ValueError (one line) for a bad prefix or a port outside 1..65535.
    """

    daddr: str
    dport: int
    _net: ipaddress.IPv4Network = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            net = ipaddress.IPv4Network(self.daddr, strict=True)
        except ValueError as exc:
            raise ValueError(f"data match: bad destination '{self.daddr}': {exc}") from None
        if isinstance(self.dport, bool) or not isinstance(self.dport, int) or not 1 <= self.dport <= 65535:
            raise ValueError(f"data match: destination port must be 1..65535, got {self.dport!r}")
        object.__setattr__(self, "_net", net)

    def _addr(self) -> str:
        net = self._net
        return str(net.network_address) if net.prefixlen == 32 else str(net)

    def nft(self) -> str:
        """The nft expression (family ip) for a rule: ``ip daddr A udp dport P``."""
        return f"ip daddr {self._addr()} udp dport {self.dport}"

    def bpf(self) -> str:
        """The pcap filter expression, parenthesised so it can be or-ed with others."""
        return f"(udp and dst net {self._net} and dst port {self.dport})"

    def matches(self, frame: bytes, off: int) -> bool:
        """Whether the IPv4 packet at ``frame[off:]`` matches (headers only; a cut payload is fine)."""
        if len(frame) < off + 20 or frame[off] >> 4 != 4 or frame[off + 9] != _IPPROTO_UDP:
            return False
        if (frame[off + 6] & 0x1F) or frame[off + 7]:  # a non-first fragment: no UDP header
            return False
        ihl = (frame[off] & 0x0F) * 4
        if ihl < 20 or len(frame) < off + ihl + 4:
            return False
        dst = struct.unpack_from("!I", frame, off + 16)[0]
        net = self._net
        if dst & int(net.netmask) != int(net.network_address):
            return False
        return struct.unpack_from("!H", frame, off + ihl + 2)[0] == self.dport


def capture_filter(matches: Iterable[DataMatch] = ()) -> str:
    """The tcpdump filter of a link capture: LISP data and control (UDP 4341/4342, either port) or any of
    ``matches`` (what the links' nft counters count)."""
    return " or ".join([f"udp port {LISP_DATA_PORT}", f"udp port {LISP_CONTROL_PORT}", *(m.bpf() for m in matches)])
