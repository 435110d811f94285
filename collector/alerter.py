"""Deprecated: the alerter moved to ``sagascope.alerter``; this alias goes in the next release."""

import warnings

from sagascope.alerter import *  # noqa: F403
from sagascope.alerter import __all__ as __all__
from sagascope.queries import Alert, flow_link, list_alerts  # noqa: F401

warnings.warn("sagascope.collector.alerter moved to sagascope.alerter", DeprecationWarning, stacklevel=2)
