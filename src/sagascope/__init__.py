"""sagascope: a distributed tracing and audit observatory for sagas over Kafka.

The parts are subpackages, each a top-level folder of the repository (see docs/internals.md):
``sagascope.instrumentation`` (what services embed; ``contract`` is the wire contract),
``sagascope.store`` (ClickHouse: schema, backends, audit chain), ``sagascope.collector``
(Kafka to the store), ``sagascope.queries`` (one method per question), ``sagascope.alerter``
(stalled sagas to sinks), ``sagascope.dashboard`` and ``sagascope.demo_services``. This
package is the application shell: CLI, settings, exceptions, embedded broker, replay.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
