"""Errors of ``sagascope.instrumentation``.

Only programming errors at the call site raise (an unknown ``kind`` or saga status, a value
that cannot be serialized). Telemetry failures at run time are logged, never raised.
"""


class InstrumentationError(Exception):
    """Base of every error raised by ``sagascope.instrumentation``."""


class ContractError(InstrumentationError, ValueError):
    """An argument would produce headers that break the wire contract (e.g. an unknown kind)."""
