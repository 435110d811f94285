"""The Streamlit dashboard over the query layer (:mod:`sagascope.queries`).

``serve(settings, store=None, port=None, block=True)`` starts it in this process. The pages
(``dashboard/views``, one script each) are thin: they ask the query layer through
``cached_queries`` (each cached question written once), keep their filters in the URL
(``url_state``), share the chrome (``chrome``: sidebar, watermark, live refresh) and draw with
pure functions (``charts``, ``figures`` and ``waterfall``: SVG drawn on the server).
"""

from sagascope.dashboard.exceptions import DashboardError
from sagascope.dashboard.server import APP_PATH, DashboardServer, serve

__all__ = ["APP_PATH", "DashboardError", "DashboardServer", "serve"]
