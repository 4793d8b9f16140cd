"""Ports, sizes and bit masks shared by the codecs, the daemons and the model."""

LISP_DATA_PORT = 4341
"""UDP port of LISP data packets (RFC 9300)."""
LISP_CONTROL_PORT = 4342
"""UDP port of LISP control messages (RFC 9301)."""
CORECAST_PORT = 4340
"""Default UDP port of an ITR's CoreCast service address (ours, configurable)."""

IPV4_HEADER = 20
UDP_HEADER = 8
LISP_HEADER = 8
CORECAST_HEADER = 12
CORECAST_REF_BODY = 20
CORECAST_REF = CORECAST_HEADER + CORECAST_REF_BODY
ENCAP_OVERHEAD = IPV4_HEADER + UDP_HEADER + LISP_HEADER  # 36

AFI_IPV4 = 1
AFI_LCAF = 16387

# LISP data header, first byte.
LISP_FLAG_N = 0x80
LISP_FLAG_L = 0x40
LISP_FLAG_E = 0x20
LISP_FLAG_V = 0x10
LISP_FLAG_I = 0x08
LISP_FLAG_C = 0x04  # the reserved R bit of RFC 9300, used by CoreCast
LISP_FLAG_KK = 0x03

# Locator record flags (16 bits): RFC 9301 defines L, p, R; CoreCast uses the
# most significant of the unused flag bits to advertise capability.
LOC_FLAG_R = 0x0001
LOC_FLAG_P = 0x0002
LOC_FLAG_L = 0x0004
LOC_FLAG_CORECAST = 0x8000
