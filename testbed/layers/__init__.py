"""scapy layers for the testbed's protocols; importing this package binds them to their UDP ports."""

from testbed.layers.corecast import CoreCast, CoreCastRef
from testbed.layers.lisp import (LispAfiAddress, LispControl, LispData, LispEcm, LispEidRecord, LispLocator,
                                 LispMapNotify, LispMapRegister, LispMapReply, LispMapRequest,
                                 LispRequestRecord)

__all__ = ["CoreCast", "CoreCastRef", "LispAfiAddress", "LispControl", "LispData", "LispEcm", "LispEidRecord",
           "LispLocator", "LispMapNotify", "LispMapRegister", "LispMapReply", "LispMapRequest",
           "LispRequestRecord"]
