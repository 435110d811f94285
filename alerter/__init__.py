"""The alerter: one alert per stalled saga, resolved when it moves on, sent to sinks.

    from sagascope.alerter import Alerter

    alerter = Alerter(store, settings)      # settings.alerts: thresholds and sinks
    alerter.run(stop_event)                 # or evaluate_once()
"""

from sagascope.alerter.alerter import Alerter, Evaluation
from sagascope.alerter.alertmanager import AlertmanagerSink
from sagascope.alerter.exceptions import AlerterError, PermanentDeliveryError
from sagascope.alerter.registry import build_sinks
from sagascope.alerter.retrying import AlertSink
from sagascope.alerter.sinks import KafkaSink, LogSink, WebhookSink
from sagascope.alerter.thresholds import StepDurations, Threshold, Thresholds

__all__ = [
    "AlertSink",
    "Alerter",
    "AlerterError",
    "AlertmanagerSink",
    "Evaluation",
    "KafkaSink",
    "LogSink",
    "PermanentDeliveryError",
    "StepDurations",
    "Threshold",
    "Thresholds",
    "WebhookSink",
    "build_sinks",
]
