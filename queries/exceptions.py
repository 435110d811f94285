"""Errors of the query layer."""

from sagascope.exceptions import SagascopeError


class QueryError(SagascopeError):
    """A query was asked with invalid arguments (an unknown status, a bad filter)."""


class NotFound(QueryError):
    """No saga, trace or message matches the key asked for."""
