"""What a service adds to be traced: the decorator, the instrumented producer, saga API, span export.

    from sagascope.instrumentation import InstrumentedProducer, saga_handler, start_saga

    producer = InstrumentedProducer(KafkaProducer(bootstrap_servers=...), "orders")
    with start_saga("order-fulfillment", saga_id=order_id):
        producer.send("payments", {"order": order_id}, type="RetrievePayment", kind="command")

    @saga_handler("payment", consumer_group="payment")
    def on_command(record):
        producer.send("orders", {...}, type="PaymentReceived")   # same saga, caused by record

The same two work with confluent-kafka (``InstrumentedProducer(confluent_kafka.Producer(...))``,
handlers taking a ``confluent_kafka.Message``) and aiokafka (``await producer.send(...)``,
``async`` handlers taking its ``ConsumerRecord``); neither client is imported unless used.
"""

from sagascope.instrumentation import contract as contract
from sagascope.instrumentation._export import (
    DEFAULT_TELEMETRY_TOPIC,
    SPAN_RECORD_TYPE,
    KafkaSpanExporter,
    configure_tracing,
    span_to_dict,
)
from sagascope.instrumentation._handler import saga_handler
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
    "DEFAULT_TELEMETRY_TOPIC",
    "SPAN_RECORD_TYPE",
    "ContractError",
    "InstrumentationError",
    "InstrumentedProducer",
    "KafkaSpanExporter",
    "MalformedHeader",
    "SagaContext",
    "compensating",
    "configure_tracing",
    "contract",
    "current_saga",
    "saga_handler",
    "saga_outcome",
    "span_to_dict",
    "start_saga",
]
