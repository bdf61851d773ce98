"""Threat: the data-QA statistics a site shares hide counts of 1 to 4 patients' studies, but
also release their totals, so the aggregator recovers a hidden count by subtraction (today:
studies minus studies-with-report gives the studies without a report).

Defence: a count whose total is released is hidden together with its complement when either
is 1 to 4, and a table whose total is released hides a second cell when only one is small
(:func:`client_site.ingestion.qa.suppress_pair`, :func:`~client_site.ingestion.qa.suppress_table`).
"""

from client_site.ingestion import qa_metrics
from client_site.ingestion.qa import compute_qa

HIDDEN = range(1, 5)


def _site_qa():
    """10 studies: 7 with a report, 8 gantry-tilted, 9 without air; series 12 = 10 + 2 + 0."""
    volumes = {f"s{k:02d}": {"spacing_mm": [2.5, 0.7, 0.7], "thickness_mm": 2.5, "plane": "axial",
                             "tilt_deg": 5.0 if k < 8 else 0.0,
                             "hu_percentiles": {"p01": -500.0 if k < 9 else -1000.0, "p99": 400.0}}
               for k in range(10)}
    summary = {"files_seen": 500, "files_accepted": 450, "files_rejected": 50,
               "rejected_by_reason": {}, "patients": 10, "studies_with_report": 7,
               "series": {"seen": 12, "accepted": 10, "rejected": 2, "not_selected": 0},
               "reports": {"rejected": 0}}
    reports = {key: ("FINDINGS: clear lungs.", "en") for key in list(volumes)[:7]}
    return qa_metrics(compute_qa(summary, [{"study_key": k} for k in volumes], volumes, reports))


def test_no_hidden_count_follows_from_a_released_total():
    # Execute
    released = _site_qa()
    # Assert: the aggregator's subtractions give nothing in 1..4
    assert released["qa_studies"] == 10
    for part in ("qa_studies_with_report", "qa_gantry_tilted_studies", "qa_studies_without_air"):
        assert part not in released or released["qa_studies"] - released[part] not in HIDDEN, part
    series = [released.get(f"qa_series_{k}") for k in ("accepted", "rejected", "not_selected")]
    shown = [v for v in series if v is not None]
    assert len(shown) < 2 or released["qa_series_seen"] - sum(shown) not in HIDDEN
