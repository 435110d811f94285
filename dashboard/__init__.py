"""The Streamlit dashboard over the query layer (:mod:`sagascope.queries`).

``serve(settings, store=None, port=None, block=True)`` starts it in this process. The pages
(``dashboard/views``, one script each) are thin and ask the query layer through the typed,
cached facade in ``_page.py``; the charts in :mod:`sagascope.dashboard.figures` are pure.
"""

from sagascope.dashboard.exceptions import DashboardError
from sagascope.dashboard.server import APP_PATH, DashboardServer, serve

__all__ = ["APP_PATH", "DashboardError", "DashboardServer", "serve"]
