"""Errors of ``sagascope.instrumentation``.

Only programming errors at the call site raise (an unknown ``kind`` or saga status, a value
that cannot be serialized). Telemetry failures at run time are logged, never raised.
Parsing a contract header that breaks the contract raises :class:`MalformedHeader`, which
the readers of headers (the handler, the collector, replay) catch and record::

    SagascopeError                (sagascope.exceptions: the only module of ours imported here)
    └── InstrumentationError
        ├── ContractError         (also a ValueError)
        └── MalformedHeader       (also a ValueError)
"""

from sagascope.exceptions import SagascopeError


class InstrumentationError(SagascopeError):
    """Base of every error raised by ``sagascope.instrumentation``."""


class ContractError(InstrumentationError, ValueError):
    """An argument would produce headers that break the wire contract (e.g. an unknown kind)."""


class MalformedHeader(InstrumentationError, ValueError):
    """A contract header is present but its value does not follow the contract."""
