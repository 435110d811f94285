"""What a service adds to be traced: the decorator, the instrumented producer, saga API, span export."""

from sagascope.instrumentation import _contract as contract

__all__ = ["contract"]
