"""What a service adds to be traced: the decorator, the instrumented producer, saga API, span export.

    from sagascope.instrumentation import InstrumentedProducer, handled, saga_outcome, start_saga

    producer = InstrumentedProducer(KafkaProducer(bootstrap_servers=...), service="orders")
    with start_saga("order-fulfillment", saga_id=order_id):
        producer.send("payments", {"type": "RetrievePayment", "order": order_id}, kind="command")

    for record in handled(consumer, service="orders"):  # or with handling(record), @saga_handler
        producer.send("orders", {...}, type="PaymentReceived")  # same saga, caused by record
        saga_outcome("completed")            # sent as a marker if no later send carries it

The same work with confluent-kafka (``InstrumentedProducer(confluent_kafka.Producer(...), ...)``,
``handled(consumer, poll_timeout_s=1.0)`` for its poll loop) and aiokafka
(``await producer.send(...)``, ``async for record in handled(consumer)``, ``async`` handlers or
``async with handling(record)``); neither client is imported unless used.
"""

from sagascope.instrumentation import contract as contract
from sagascope.instrumentation._export import (
    DEFAULT_TELEMETRY_TOPIC,
    SPAN_RECORD_TYPE,
    KafkaSpanExporter,
    configure_tracing,
    span_to_dict,
)
from sagascope.instrumentation._handled import Handled, handled
from sagascope.instrumentation._handler import Handling, handling, saga_handler
from sagascope.instrumentation._outcome import DEFAULT_OUTCOME_TOPIC
from sagascope.instrumentation._producer import InstrumentedProducer
from sagascope.instrumentation._saga import (
    SagaContext,
    compensating,
    current_saga,
    saga_outcome,
    start_saga,
)
from sagascope.instrumentation.exceptions import (
    ContractError,
    InstrumentationError,
    MalformedHeader,
)

__all__ = [
    "DEFAULT_OUTCOME_TOPIC",
    "DEFAULT_TELEMETRY_TOPIC",
    "SPAN_RECORD_TYPE",
    "ContractError",
    "Handled",
    "Handling",
    "InstrumentationError",
    "InstrumentedProducer",
    "KafkaSpanExporter",
    "MalformedHeader",
    "SagaContext",
    "compensating",
    "configure_tracing",
    "contract",
    "current_saga",
    "handled",
    "handling",
    "saga_handler",
    "saga_outcome",
    "span_to_dict",
    "start_saga",
]
