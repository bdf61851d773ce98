"""Second step of ingestion: order and check each series, and say why a usable series was not selected."""

from __future__ import annotations

import logging
from typing import Any

from client_site.ingestion.errors import FileRejected, RejectCode, SeriesRejected
from client_site.ingestion.header_pass import HeaderPass
from client_site.ingestion.outcomes import NOT_SELECTED, REJECTED, FileOutcomes, series_entry
from client_site.ingestion.series import order_series
from client_site.ingestion.slices import SliceHeader
from client_site.ingestion.study import StudyInfo

logger = logging.getLogger(__name__)

NOT_SELECTED_REASON = (
    "series not selected: the study has a thinner complete series (rule: axial series first, then smallest "
    "slice spacing, then most slices, then file path order)"
)
NOT_SELECTED_PLANE_REASON = (
    "series not selected: the study has a usable axial series, and reformatted (coronal, sagittal, oblique) "
    "series are used only when it has none"
)


def check_series(
    groups: dict[str, list[SliceHeader]], headers: HeaderPass, outcomes: FileOutcomes, series_log: dict[str, dict[str, Any]]
) -> dict[str, StudyInfo]:
    """Order and check each series; collect the usable ones per study (keyed by study_key)."""
    studies: dict[str, StudyInfo] = {}
    for series_key, slices in groups.items():
        first = slices[0]
        study = studies.setdefault(first.study_key, StudyInfo(
            key=first.study_key, patient_key=first.patient_key, has_accession=first.has_accession))
        for header in slices:
            study.files[header.rel_path] = header.path
            study.content_keys[header.rel_path] = headers.content_keys[header.rel_path]
            if header.rel_path in headers.identities:
                study.identities[header.rel_path] = headers.identities[header.rel_path]
        if not first.has_accession:
            logger.warning("a series has an empty AccessionNumber; its study key comes from StudyInstanceUID")
        try:
            ordered = order_series(slices)
        except SeriesRejected as error:
            series_log[series_key] = series_entry(
                series_key=series_key, study_key=study.key, patient_key=study.patient_key, status=REJECTED,
                reason=error.reason, n_slices=len(slices), spacing_mm=None,
                shape=(len(slices), first.rows, first.columns))
            reject_all(slices, f"series rejected: {error.reason}", RejectCode.SERIES_REJECTED, outcomes)
            continue
        series_log[series_key] = series_entry(
            series_key=series_key, study_key=study.key, patient_key=study.patient_key, status=NOT_SELECTED,
            reason=NOT_SELECTED_REASON, n_slices=len(slices), spacing_mm=ordered.spacing_mm, shape=ordered.shape)
        study.candidates.append(ordered)
    return studies


def mark_not_selected(studies: dict[str, StudyInfo], outcomes: FileOutcomes,
                       series_log: dict[str, dict[str, Any]]) -> None:
    """Give the candidates that were neither used nor failed their 'not selected' reason."""
    for study in studies.values():
        for series in study.candidates:
            entry = series_log[series.series_key]
            if entry["status"] != NOT_SELECTED:
                continue
            reason = NOT_SELECTED_REASON
            if study.selected is not None and study.selected.plane == "axial" and series.plane != "axial":
                reason = NOT_SELECTED_PLANE_REASON
            entry["reason"] = reason
            reject_all(list(series.slices), reason, RejectCode.SERIES_NOT_SELECTED, outcomes)


def reject_all(slices: list[SliceHeader], reason: str, code: RejectCode, outcomes: FileOutcomes) -> None:
    """Give every slice's file the same rejection."""
    for header in slices:
        outcomes.reject(header.rel_path, "dicom", FileRejected(code, reason))
