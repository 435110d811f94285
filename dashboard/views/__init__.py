"""The dashboard's pages, one Streamlit script each (``st.Page`` in ``app.py``).

Not in a ``pages/`` folder: Streamlit treats ``.py`` files in a ``pages/`` folder beside the
main script as legacy multipage-app pages and, on reruns, runs them without ``app.py``.
"""
