"""The collector: Kafka to the store, nothing else (consume, decode, batch, insert, then commit).

Store and audit names live in ``sagascope.store``.
"""

from sagascope.collector.consumer import Collector
from sagascope.collector.exceptions import CollectorError, RuleError
from sagascope.collector.metrics import CollectorMetrics

__all__ = [
    "Collector",
    "CollectorError",
    "CollectorMetrics",
    "RuleError",
]
