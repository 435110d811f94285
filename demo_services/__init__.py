"""Demo sagas for sagascope: small services over Kafka, instrumented, with fault injection.

Four saga types (``order``, ``order-fulfillment``, ``shipment``, ``trip-booking``) and a legacy
warehouse that sends no headers. :class:`DemoRunner` runs every service in a thread of one
process; :class:`GroundTruth` holds what each started saga must look like in the store.
"""

from sagascope.demo_services._faults import FaultyProducer, ServiceFaultConfig, resolve_faults
from sagascope.demo_services._isolation import foreign_topics
from sagascope.demo_services._runtime import ClientConfigs
from sagascope.demo_services._topics import EXTERNAL_PREFIX, demo_topics
from sagascope.demo_services.ground_truth import (
    ExpectedMessage,
    GroundTruth,
    SagaPlan,
    SagaTruth,
    expected_truth,
)
from sagascope.demo_services.runner import SERVICES, DemoRunner
from sagascope.demo_services.traffic import TrafficGenerator, plan_sagas

__all__ = [
    "EXTERNAL_PREFIX",
    "SERVICES",
    "ClientConfigs",
    "DemoRunner",
    "ExpectedMessage",
    "FaultyProducer",
    "GroundTruth",
    "SagaPlan",
    "SagaTruth",
    "ServiceFaultConfig",
    "TrafficGenerator",
    "demo_topics",
    "expected_truth",
    "foreign_topics",
    "plan_sagas",
    "resolve_faults",
]
