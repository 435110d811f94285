"""The root of every sagascope error, and the errors of the application (settings, CLI, replay).

Each part keeps its own hierarchy in its ``exceptions.py`` under :class:`SagascopeError`
(``sagascope.instrumentation.exceptions``, ``sagascope.store.exceptions``,
``sagascope.collector.exceptions``, ``sagascope.queries.exceptions``,
``sagascope.alerter.exceptions``, ``sagascope.dashboard.exceptions``). This module imports
nothing, so every part, the instrumentation included, may import it.
"""


class SagascopeError(Exception):
    """Base of every sagascope error."""


class ConfigError(SagascopeError):
    """A setting is missing, unknown or of the wrong type; the message names it."""


class ReplayError(SagascopeError):
    """The event log cannot be read (format, columns, timestamps); the message says where."""
