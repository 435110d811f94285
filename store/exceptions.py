"""Errors of the store; driver errors are mapped to these at the boundary."""

from sagascope.exceptions import SagascopeError


class StoreError(SagascopeError):
    """A store operation failed (bad SQL, bad identifier, a driver error)."""


class StoreUnavailable(StoreError):
    """The store cannot be reached right now; the caller retries with backoff."""


class StoreHeld(StoreError):
    """The embedded store is held by another process, which this one cannot use or reach."""
