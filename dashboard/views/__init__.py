"""The dashboard's pages, run by ``st.navigation`` from ``dashboard/app.py``."""

# Named views/ rather than pages/: Streamlit treats a pages/ folder beside the entrypoint as
# legacy auto-discovered pages. Each page module is a script (Streamlit runs it as __main__).
__all__: list[str] = []
