"""``sagascope discover``: propose correlation rules from the records on un-instrumented topics.

Sample (Kafka without a consumer group, or records stored without a saga) -> profile each
topic's sources -> find the id that ties records into flows (decoys set aside) -> the event
time, type and outcome per topic -> what each type means (kind, step, status, undo) -> rules,
measured with the collector's own decoder -> TOML.
"""

from sagascope.collector.discover.proposal import Proposal, TopicFinding, discover, flow_status
from sagascope.collector.discover.sample import SampledRecord, sample_kafka, sample_store
from sagascope.collector.discover.toml_rules import render_rules, write_rules

__all__ = [
    "Proposal",
    "SampledRecord",
    "TopicFinding",
    "discover",
    "flow_status",
    "render_rules",
    "sample_kafka",
    "sample_store",
    "write_rules",
]
