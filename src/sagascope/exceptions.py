"""Errors of the sagascope application (settings, CLI). Each part keeps its own hierarchy."""


class SagascopeError(Exception):
    """Base of every sagascope error."""


class ConfigError(SagascopeError):
    """A setting is missing, unknown or of the wrong type; the message names it."""
