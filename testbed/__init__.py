"""CoreCast testbed: LISP and CoreCast on emulated Autonomous Systems (Mininet)."""

__version__ = "0.1.0"
