"""Ground-truth labels of a site, read only by evaluation that runs at the site."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from client_site.findings import FINDINGS
from client_site.pseudonym import pseudonymize


def load_study_labels(labels_path: Path, salt: bytes) -> dict[str, np.ndarray]:
    """Finding labels by pseudonymous study key (the key ingestion gives the study).

    Raises
    ------
    FileNotFoundError
        If the site has no ``truth/labels.csv`` (needed only for the diagnosis probe).
    """
    path = Path(labels_path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the diagnosis probe needs finding labels per accession "
            f"(columns accession,{','.join(FINDINGS)})"
        )
    labels: dict[str, np.ndarray] = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("accession", *FINDINGS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                values = np.array([int(row[f]) for f in FINDINGS], dtype=np.int64)
            except ValueError as e:
                raise ValueError(f"{path}:{line}: finding labels must be 0 or 1 ({e})") from e
            labels[pseudonymize("study", row["accession"], salt)] = values
    return labels
