"""LISP control messages (RFC 9301 section 5): fast codec.

Every message class has ``encode() -> bytes``; :func:`decode_control` turns
untrusted bytes (the UDP payload of port 4342) back into one of them and
raises only :class:`~testbed.wire.errors.DecodeError`. Addresses are text
(:mod:`.addr`): IPv4 is what the testbed uses; IPv6 and LCAF addresses are
decoded and carried so that one of them never makes a whole message unreadable.

Modules: :mod:`.addr` (AFI addresses and prefixes), :mod:`.records` (EID and
Locator records), :mod:`.messages` (message classes, flag bits, encoders),
:mod:`.decode` (decoder and HMAC check). docs/protocol.md has the diagrams.
"""

from testbed.wire.lispctrl.addr import AFI_IPV6, AFI_NONE, is_ipv4
from testbed.wire.lispctrl.decode import decode_control, verify_auth
from testbed.wire.lispctrl.messages import (ALG_NONE, ALG_SHA1_96, ALG_SHA256_128, AUTH_LEN, ECM_D, ECM_S,
                                                NOT_I, NOT_R, REG_E, REG_I, REG_M, REG_MERGE, REG_P, REG_R, REG_S,
                                                REG_T, REP_E, REP_P, REP_S, REQ_A, REQ_M, REQ_P, REQ_PITR, REQ_S,
                                                REQ_SMR_INVOKED, TYPE_ECM, TYPE_MAP_NOTIFY, TYPE_MAP_REGISTER,
                                                TYPE_MAP_REPLY, TYPE_MAP_REQUEST, ControlMessage, Ecm, MapNotify,
                                                MapRegister, MapReply, MapRequest)
from testbed.wire.lispctrl.records import (ACTION_DROP, ACTION_NATIVE_FORWARD, ACTION_NO_ACTION,
                                               ACTION_SEND_MAP_REQUEST, REC_AUTHORITATIVE, EidRecord, Locator)

__all__ = [
    "ACTION_DROP", "ACTION_NATIVE_FORWARD", "ACTION_NO_ACTION", "ACTION_SEND_MAP_REQUEST", "AFI_IPV6", "AFI_NONE",
    "ALG_NONE", "ALG_SHA1_96", "ALG_SHA256_128", "AUTH_LEN", "ControlMessage", "ECM_D", "ECM_S", "Ecm", "EidRecord",
    "Locator", "MapNotify", "MapRegister", "MapReply", "MapRequest", "NOT_I", "NOT_R", "REC_AUTHORITATIVE",
    "REG_E", "REG_I", "REG_M", "REG_MERGE", "REG_P", "REG_R", "REG_S", "REG_T", "REP_E", "REP_P", "REP_S", "REQ_A",
    "REQ_M", "REQ_P", "REQ_PITR", "REQ_S", "REQ_SMR_INVOKED", "TYPE_ECM", "TYPE_MAP_NOTIFY", "TYPE_MAP_REGISTER",
    "TYPE_MAP_REPLY", "TYPE_MAP_REQUEST", "decode_control", "is_ipv4", "verify_auth",
]
