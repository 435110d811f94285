"""One query layer for the dashboard, the CLI and the alerter: one method per question.

    from sagascope.queries import SagaQueries, SagaFilter

    queries = SagaQueries(store)
    flow = queries.flow("order-123")                     # by saga id, message id or trace id
    failed = queries.sagas(SagaFilter(status="failed"))

Importing it loads neither Kafka clients nor the collector.
"""

from sagascope.queries.alerts import (
    STATE_OPEN,
    STATE_RESOLVED,
    Alert,
    alert_row,
    flow_link,
    list_alerts,
)
from sagascope.queries.exceptions import NotFound, QueryError
from sagascope.queries.saga_queries import (
    FINISHED_STATUSES,
    STATUSES,
    CompensationPair,
    CycleTimeStats,
    FailureCount,
    Flow,
    FlowMessage,
    ProcessEdge,
    ProcessMap,
    ProcessNode,
    SagaFilter,
    SagaQueries,
    SagaSummary,
    StalledSaga,
    StallRule,
    ThroughputPoint,
    Transition,
    Variant,
)

__all__ = [
    "FINISHED_STATUSES",
    "STATE_OPEN",
    "STATE_RESOLVED",
    "STATUSES",
    "Alert",
    "CompensationPair",
    "CycleTimeStats",
    "FailureCount",
    "Flow",
    "FlowMessage",
    "NotFound",
    "ProcessEdge",
    "ProcessMap",
    "ProcessNode",
    "QueryError",
    "SagaFilter",
    "SagaQueries",
    "SagaSummary",
    "StallRule",
    "StalledSaga",
    "ThroughputPoint",
    "Transition",
    "Variant",
    "alert_row",
    "flow_link",
    "list_alerts",
]
