"""Errors of the collector, store and query layer; driver errors are mapped at the boundary."""

from sagascope.exceptions import SagascopeError


class CollectorError(SagascopeError):
    """Base of the collector's errors."""


class StoreError(CollectorError):
    """A store operation failed (bad SQL, bad identifier, a driver error)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the caller retries with backoff."""


class NotFound(CollectorError):
    """No saga, trace or message matches the key asked for."""
