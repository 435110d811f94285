"""Deprecated: the query layer moved to ``sagascope.queries``; this alias goes in the next release."""

import warnings

from sagascope.queries import *  # noqa: F403
from sagascope.queries import __all__ as __all__

warnings.warn(
    "sagascope.collector.queries moved to sagascope.queries", DeprecationWarning, stacklevel=2
)
