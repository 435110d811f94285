"""The current span, read straight from OpenTelemetry's context variable when that is safe.

``trace.get_current_span()`` goes through three API layers (about 0.3 µs); a producer asks
once per message. With the default runtime context (context variables, as the API ships it)
the span sits in one ``ContextVar`` under one key, so reading them directly gives the same
object in a tenth of the time. Any other runtime context gets the public API.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import propagation


def current_span_reader() -> Callable[[], object]:
    """A function returning what the current context holds as its span (None when nothing).

    Callers check what they get (``isinstance(..., trace.Span)``), as the API does.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if (
        type(runtime) is not ContextVarsRuntimeContext
        or not isinstance(variable, contextvars.ContextVar)
        or not isinstance(key, str)
    ):
        return trace.get_current_span
    get_context = variable.get

    def read_current_span() -> object:
        return get_context().get(key)

    return read_current_span
