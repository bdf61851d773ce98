"""Streamlit dashboards: the consortium's (`fedmpt dashboard`) and a site's case viewer (`--site`)."""

# Submodules are imported by name (``from dashboard.launch import launch``); nothing is re-exported
# here so that ``import dashboard`` stays free of streamlit and pandas, and so that the function
# ``launch`` never shadows the module ``dashboard.launch``.
__all__: list[str] = []
