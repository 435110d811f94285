"""Errors of the dashboard."""

from sagascope.exceptions import SagascopeError


class DashboardError(SagascopeError):
    """The dashboard could not start or serve."""
