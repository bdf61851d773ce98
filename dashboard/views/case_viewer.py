"""Case viewer: scroll a cached CT, see the interpretability overlay, edit and accept the draft."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

from client_site.clinical_metrics import interaction_warnings
from dashboard.accepted_reports import accept_report, load_accepted
from dashboard.site_reader import (
    WINDOWS,
    Draft,
    SiteReadError,
    Study,
    load_draft,
    load_explanation,
    load_index,
    load_interactions,
    load_volume,
)
from dashboard.views._site import SiteContext, current_site

__all__ = ["render", "slice_image"]

#: Displayed slice edge in pixels (nearest-neighbour upscaling keeps voxels crisp).
_DISPLAY_PX = 512


def slice_image(
    volume: np.ndarray, window: int, index: int, heat: np.ndarray | None = None, opacity: float = 0.5
) -> np.ndarray:
    """One slice as an RGB uint8 image, with the focus region of the interpretability map outlined.

    Parameters
    ----------
    volume : numpy.ndarray
        (3, D, H, W) windows in [0, 1].
    window : int
        Channel: 0 lung, 1 mediastinum, 2 bone.
    index : int
        Slice, 0-based.
    heat : numpy.ndarray | None
        (D, H, W) map in [0, 1], zero outside the region that drove the finding (the drafting
        step keeps only the hottest part of the chest). The region is drawn as a semi-transparent
        blob, yellow (weaker) to red (stronger), with an opaque red contour; where the map is 0
        the slice shows unchanged. (default: None)
    opacity : float
        Opacity of the blob where the map is 1. (default: 0.5)

    Returns
    -------
    numpy.ndarray
        (H*k, W*k, 3) uint8, upscaled by the integer k that brings it near ``_DISPLAY_PX``.
    """
    gray = np.nan_to_num(np.asarray(volume[window, index], dtype=np.float32)).clip(0.0, 1.0)
    rgb = np.repeat(gray[..., None], 3, axis=-1)  # (H, W, 3)
    scale = max(1, _DISPLAY_PX // max(gray.shape))
    contour = None
    if heat is not None:
        h = np.nan_to_num(np.asarray(heat[index], dtype=np.float32)).clip(0.0, 1.0)
        region = h > 0.0
        color = np.stack([np.ones_like(h), 1.0 - h, np.zeros_like(h)], axis=-1)
        alpha = (opacity * (0.4 + 0.6 * h) * region)[..., None]
        rgb = rgb * (1.0 - alpha) + color * alpha
        contour = _outline(region.repeat(scale, axis=0).repeat(scale, axis=1))
    image = (rgb * 255.0 + 0.5).astype(np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
    if contour is not None and opacity > 0.0:
        image[contour] = (255, 0, 0)
    return image


def _outline(region: np.ndarray) -> np.ndarray:
    """Pixels of ``region`` with a 4-neighbour outside it (the region's one-pixel contour)."""
    padded = np.pad(region, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return region & ~interior


def _viewer(context: SiteContext, study: Study) -> None:
    try:
        volume = load_volume(context.site_dir, study)
        heat = load_explanation(context.site_dir, study.study_key, tuple(volume.shape[1:]))
    except SiteReadError as e:
        st.error(str(e))
        return
    depth = int(volume.shape[1])
    window = st.radio("Window", WINDOWS, horizontal=True, key="window")
    if depth > 1:
        index = st.slider("Slice (feet → head)", 1, depth, value=depth // 2 + 1,
                          key=f"slice_{study.study_key}") - 1
    else:
        index = 0
    opacity = 0.0
    if heat is not None:
        show = st.toggle("Interpretability overlay", value=True, key="overlay")
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity") if show else 0.0
    st.image(slice_image(volume, WINDOWS.index(window), index, heat if opacity else None, opacity),
             caption=f"slice {index + 1} / {depth}, {window} window")
    if heat is None:
        st.info(
            "No interpretability map for this study yet. The model's explanation step writes it "
            f"to `cache/explanations/{study.study_key}.npy`: a (slices, rows, cols) float map in "
            "[0, 1] on this volume's grid. It is produced at the site (it never leaves it)."
        )


def _clinical(study: Study) -> None:
    st.subheader("Patient")
    st.caption(f"Study `{study.study_key}` · patient `{study.patient_key}` (pseudonymous keys)")
    clinical = study.clinical
    if not clinical:
        st.caption("No clinical record linked to this study.")
    else:
        facts = {k: clinical.get(k) for k in ("age", "sex") if clinical.get(k) is not None}
        if facts:
            st.markdown(" · ".join(f"**{k}** {v}" for k, v in facts.items()))
        for key, label in (("symptoms", "symptoms"), ("current_medications", "current medications"),
                           ("medications", "prescribed at this visit")):
            value = clinical.get(key)
            if value:
                st.markdown(f"**{label}**: {', '.join(map(str, value)) if isinstance(value, list) else value}")
        labs = clinical.get("labs")
        if isinstance(labs, dict) and labs:
            st.markdown("**labs**: " + ", ".join(f"{k} {v}" for k, v in labs.items() if v is not None))
    st.subheader("Report on file")
    if study.report:
        st.text(study.report)
    else:
        st.caption("No report linked to this study.")


def _current_medications(study: Study) -> list[str]:
    value = (study.clinical or {}).get("current_medications")
    if isinstance(value, list):
        return [str(v) for v in value]
    return [v.strip() for v in str(value or "").split(";") if v.strip()]


def _warnings(
    stored: list[str], drafted: list[str], recommended: list[str], current: list[str],
    interactions: dict[frozenset[str], tuple[str, str]],
) -> list[str]:
    """Warnings to show, each once: the stored ones that are not interaction checks of the drafted
    drugs (e.g. a dosing note), then the interaction check of the drugs as edited now."""
    stale = set(interaction_warnings(drafted, current, interactions))
    kept = [w for w in stored if w not in stale]
    return list(dict.fromkeys([*kept, *interaction_warnings(recommended, current, interactions)]))


def _draft(context: SiteContext, study: Study) -> None:
    st.subheader("Drafted report")
    key = study.study_key
    try:
        draft = load_draft(context.site_dir, key)
        accepted = load_accepted(context.site_dir, key)
        interactions = load_interactions(context.site_dir)
    except SiteReadError as e:
        st.error(str(e))
        return
    if draft is None and not accepted:
        st.info(
            "No drafted report for this study yet. The site's drafting step writes "
            f"`cache/drafts/{key}.json` (findings, impression, medications, warnings), e.g. "
            "`fedmpt report draft --study ...`; it then appears here to edit and accept."
        )
        return
    start: dict[str, Any]
    if accepted:
        start = accepted[-1]
        st.success(f"Accepted by **{start.get('accepted_by')}** at {start.get('accepted_at')} "
                   f"({len(accepted)} version(s)); edit and accept again to add a version.")
    else:  # not accepted yet, so there is a draft
        start = {"findings": draft.findings, "impression": draft.impression,
                 "medications": draft.medications, "warnings": draft.warnings} if draft else {}
    findings = st.text_area("Findings", str(start.get("findings", "")), height=140, key=f"findings_{key}")
    impression = st.text_area("Impression", str(start.get("impression", "")), height=90,
                              key=f"impression_{key}")
    medications = st.text_area("Recommended medications (one per line)",
                               "\n".join(map(str, start.get("medications", []))), height=90,
                               key=f"medications_{key}")
    recommended = [m.strip() for m in medications.splitlines() if m.strip()]
    shown = _warnings(list(draft.warnings if draft else start.get("warnings", [])),
                      [str(m) for m in start.get("medications", [])], recommended,
                      _current_medications(study), interactions)
    for text in shown:
        st.warning(text, icon=":material/medication:")
    if not interactions:
        st.caption("No `reference/drug_interactions.csv` at this site: interactions not checked here.")
    if st.button("Accept report", type="primary", key=f"accept_{key}"):
        try:
            version = accept_report(
                context.site_dir, key,
                Draft(findings=findings, impression=impression, medications=recommended, warnings=shown),
                user=context.user.name,
            )
        except OSError as e:
            st.error(f"Could not save the accepted report: {e.strerror or e}. Nothing was changed.")
            return
        st.toast(f"Accepted by {version['accepted_by']} at {version['accepted_at']}")
        st.rerun()
    if draft is not None and accepted:
        with st.expander("Original draft"):
            st.text(f"FINDINGS: {draft.findings}\nIMPRESSION: {draft.impression}\n"
                    f"MEDICATIONS: {', '.join(draft.medications)}")


def render(context: SiteContext) -> None:
    """Draw the study picker, the slice viewer, the patient and the draft editor."""
    st.title(f"Case viewer: {context.site_name}")
    st.caption(f"Reads only `{context.site_dir}`; nothing is sent anywhere. "
               "Studies are listed by their pseudonymous keys.")
    try:
        studies = load_index(context.site_dir)
    except FileNotFoundError:
        st.info("No ingested studies at this site yet. Ingest the PACS export first:")
        st.code(f"fedmpt ingest {context.site_dir}", language="bash")
        return
    except SiteReadError as e:
        st.error(f"Cannot read the site's cache: {e}")
        return
    if not studies:
        st.info("Ingestion accepted no study at this site; `ingest/ingest_report.json` in the site "
                "directory says why for each file.")
        return
    by_key = {s.study_key: s for s in studies}
    key = st.selectbox("Study", list(by_key), key="study",
                       format_func=lambda k: f"{k} (patient {by_key[k].patient_key[:12]})")
    study = by_key[str(key)]
    left, right = st.columns([3, 2])
    with left:
        _viewer(context, study)
    with right:
        _clinical(study)
    _draft(context, study)


if __name__ == "__main__":
    render(current_site())
