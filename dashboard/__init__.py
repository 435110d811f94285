"""The Streamlit dashboard over the collector's query layer."""
