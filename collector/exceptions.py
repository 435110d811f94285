"""Errors of the collector (the Kafka to store path)."""

from sagascope.exceptions import ConfigError, SagascopeError


class CollectorError(SagascopeError):
    """Base of the collector's errors."""


class RuleError(CollectorError, ConfigError):
    """A correlation or redaction rule in the settings is invalid; the message names it."""


class BrokerError(CollectorError):
    """The Kafka client failed (unreachable broker, failed poll); retried by the loop."""


class DiscoverError(CollectorError):
    """Discovery cannot do what was asked (e.g. rules exist for the topics); the message says why."""
