"""Errors of the alerter."""

from sagascope.exceptions import SagascopeError


class AlerterError(SagascopeError):
    """Base of the alerter's errors."""


class PermanentDeliveryError(AlerterError):
    """A sink's destination refused an alert for good (e.g. HTTP 4xx); retrying cannot help."""
