"""The Streamlit dashboard over the collector's query layer.

``serve(settings, store=None, port=None, block=True)`` starts it in this process; the pages
(``dashboard/pages``) are thin, the charts in :mod:`sagascope.dashboard.figures` are pure.
"""

from sagascope.dashboard.exceptions import DashboardError
from sagascope.dashboard.server import APP_PATH, DashboardServer, serve

__all__ = ["APP_PATH", "DashboardError", "DashboardServer", "serve"]
