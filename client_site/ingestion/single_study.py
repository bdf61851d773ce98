"""Bring one DICOM study folder into a site's cache through the regular ingestion run.

A study drafted on demand (``fedmpt report draft --study FOLDER``) must be in ``cache/index.json``
for the case viewer to show it, and ingestion keeps in the cache only what lies under
``SITE_DIR/dicom``. So a folder from elsewhere is first copied to ``dicom/imported/<study_key>/``
(named by its pseudonymous key: folder names of exports often carry patient names), then
:func:`~client_site.ingestion.pipeline.ingest_site` runs as usual, with the site's salt and the
cache's own preprocessing; being incremental, it reads only the new files.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from client_site.ingestion.errors import FileRejected
from client_site.ingestion.pipeline import ingest_site
from client_site.ingestion.preprocess import PreprocessConfig
from client_site.ingestion.reading import read_file
from client_site.ingestion.walk import walk_files
from client_site.layout import SiteLayout
from client_site.pseudonym import load_or_create_salt

logger = logging.getLogger(__name__)

IMPORT_DIR = "imported"


def study_keys_in(folder: Path, site_dir: Path) -> set[str]:
    """Pseudonymous keys (with the site's salt) of the studies of the usable CT files in ``folder``."""
    salt = load_or_create_salt(site_dir)
    keys = set()
    for walked in walk_files(Path(folder), Path(site_dir)):
        if walked.rejection is not None:
            continue
        try:
            keys.update(s.study_key for s in read_file(walked.path, walked.rel_path, salt=salt).slices)
        except FileRejected:
            continue
    return keys


def ingest_study(site_dir: Path, folder: Path, *, progress: bool = True) -> str:
    """Make sure the one study in ``folder`` is in the site's cache; return its study key.

    Parameters
    ----------
    site_dir : Path
        The site directory, ingested before (its ``cache/index.json`` fixes the preprocessing).
    folder : Path
        A folder of DICOM files of one study, inside ``SITE_DIR/dicom`` or anywhere else (then
        copied to ``dicom/imported/<study_key>/``).
    progress : bool
        Show ingestion's progress bars on stderr (default: True).

    Raises
    ------
    FileNotFoundError
        If the site has no cache index yet (run ``fedmpt ingest`` first).
    ValueError
        If ``folder`` holds no usable CT image, more than one study, or a study that ingestion
        did not accept (the site's ingest report says why).
    """
    layout = SiteLayout(Path(site_dir).resolve())
    folder = Path(folder).resolve()
    index_path = layout.cache_dir / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path} does not exist; run `fedmpt ingest {layout.root}` first")
    keys = study_keys_in(folder, layout.root)
    if len(keys) != 1:
        raise ValueError(f"{folder} holds {'no usable CT image' if not keys else f'{len(keys)} studies'}; "
                         "pass the folder of one CT study")
    (key,) = keys
    index = json.loads(index_path.read_text(encoding="utf-8"))
    if any(s.get("study_key") == key for s in index.get("studies", [])):
        return key
    dicom_dir = layout.root / "dicom"
    if not folder.is_relative_to(dicom_dir):
        target = dicom_dir / IMPORT_DIR / key
        shutil.copytree(folder, target, dirs_exist_ok=True)
        logger.info("copied the study into the site's export: %s", target.relative_to(layout.root))
    qa = (layout.cache_dir / "qa.json").is_file()  # keep the site's shared QA statistics current
    result = ingest_site(layout.root, layout.cache_dir, config=PreprocessConfig.from_dict(index["preprocess"]),
                         progress=progress, qa=qa)
    index = json.loads(result.index_path.read_text(encoding="utf-8"))
    if not any(s.get("study_key") == key for s in index.get("studies", [])):
        raise ValueError(f"ingestion did not accept the study in {folder}; see {result.report_path}")
    return key
