"""The one exception type that every decoder raises on untrusted input."""


class DecodeError(ValueError):
    """A packet could not be decoded; ``reason`` is a short stable tag for counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
