"""Read-only Streamlit dashboard over the consortium's results store (run it with `fedmpt dashboard`)."""

# Submodules are imported by name (``from dashboard.launch import launch``); nothing is re-exported
# here so that ``import dashboard`` stays free of streamlit and pandas, and so that the function
# ``launch`` never shadows the module ``dashboard.launch``.
__all__: list[str] = []
