"""One query layer for the dashboard, the CLI and the alerter: one method per question.

    from sagascope.queries import SagaQueries, SagaFilter

    queries = SagaQueries(store)
    flow = queries.flow("order-123")                     # by saga id, message id or trace id
    failed = queries.sagas(SagaFilter(status="failed"))

Importing it loads neither Kafka clients nor the collector.
"""

from sagascope.queries.alerts import (
    ACK_ACTIONS,
    STATE_OPEN,
    STATE_RESOLVED,
    Acknowledgement,
    Alert,
    acknowledge,
    acknowledgement_history,
    acknowledgements,
    alert_groups,
    alert_row,
    flow_link,
    list_alerts,
    open_alert_since,
)
from sagascope.queries.exceptions import NotFound, QueryError
from sagascope.queries.flows import causal_times
from sagascope.queries.results import (
    FINISHED_STATUSES,
    GROUP_STATES,
    PAIR_STATES,
    STATUSES,
    AlertCounts,
    AlertGroup,
    CompensationPair,
    CompensationSummary,
    CycleTimeStats,
    FailureCount,
    Flow,
    FlowMessage,
    Freshness,
    ProcessEdge,
    ProcessMap,
    ProcessNode,
    SagaDiagnosis,
    SagaFilter,
    SagaPage,
    SagaSummary,
    StalledSaga,
    StallRule,
    StepTime,
    ThroughputPoint,
    Transition,
    Variant,
)
from sagascope.queries.saga_queries import HIDDEN_PAYLOAD, SAGA_SORT_KEYS, SagaQueries
from sagascope.queries.traces import SlowHandling, TraceSpan

__all__ = [
    "ACK_ACTIONS",
    "FINISHED_STATUSES",
    "GROUP_STATES",
    "HIDDEN_PAYLOAD",
    "PAIR_STATES",
    "SAGA_SORT_KEYS",
    "STATE_OPEN",
    "STATE_RESOLVED",
    "STATUSES",
    "Acknowledgement",
    "Alert",
    "AlertCounts",
    "AlertGroup",
    "CompensationPair",
    "CompensationSummary",
    "CycleTimeStats",
    "FailureCount",
    "Flow",
    "FlowMessage",
    "Freshness",
    "NotFound",
    "ProcessEdge",
    "ProcessMap",
    "ProcessNode",
    "QueryError",
    "SagaDiagnosis",
    "SagaFilter",
    "SagaPage",
    "SagaQueries",
    "SagaSummary",
    "SlowHandling",
    "StallRule",
    "StalledSaga",
    "StepTime",
    "ThroughputPoint",
    "TraceSpan",
    "Transition",
    "Variant",
    "acknowledge",
    "acknowledgement_history",
    "acknowledgements",
    "alert_groups",
    "alert_row",
    "causal_times",
    "flow_link",
    "list_alerts",
    "open_alert_since",
]
