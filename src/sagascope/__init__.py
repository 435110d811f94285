"""sagascope: a distributed tracing and audit observatory for sagas over Kafka.

The parts are subpackages: ``sagascope.instrumentation`` (what services embed),
``sagascope.collector`` (Kafka to ClickHouse, queries, alerter), ``sagascope.dashboard``
and ``sagascope.demo_services``.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
