"""The last line of defence: a page that fails shows a sentence, never a stack trace."""

from __future__ import annotations

import logging

import streamlit as st
from streamlit.navigation.page import StreamlitPage

__all__ = ["run_guarded"]

logger = logging.getLogger(__name__)


def run_guarded(page: StreamlitPage) -> None:
    """Run ``page``; an unexpected error is logged (with its traceback) and shown as one line.

    ``st.stop`` and ``st.rerun`` raise ``BaseException`` subclasses, which pass through.
    """
    try:
        page.run()
    except Exception as e:  # noqa: BLE001 - the reader gets a message, the log the details
        logger.exception("dashboard page %s failed", getattr(page, "title", "?"))
        st.error(
            f"This page could not be drawn ({type(e).__name__}). Nothing was changed; the "
            "details are in the dashboard's log. Reload the page, or tell the consortium's "
            "operator if it persists."
        )
