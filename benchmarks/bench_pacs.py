"""Retrieval throughput of ``fedmpt site pull`` from a loopback Orthanc, against Orthanc's own archive download.

Writes ``--studies`` uncompressed studies of ``--slices`` 512x512 CT slices (the ingestion benchmark's
phantom), uploads them to a throwaway Orthanc on loopback (Debian's ``orthanc`` + ``orthanc-dicomweb``,
started as the tests start it), then, ``--repeats`` times and interleaved so that host-load drift hits
all alike: downloads every study with Orthanc's REST ``/studies/{id}/archive`` (a ZIP of the stored
files, streamed to disk), and pulls them all into a fresh site directory over DICOMweb (WADO-RS) and
over DIMSE (C-GET). Reports MB/s (medians) and each pull's throughput as a fraction of the archive
download's (target >= 0.5). The pulls write every file atomically (fsync) as they do for a hospital.
Writes ``benchmarks/results/pacs.json``.

Usage: ``python -m benchmarks.bench_pacs [--studies 4] [--slices 60] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_ingestion import machine_info, write_site
from client_site.pacs import PacsConfig, pull_site
from tests.client_site.pacs.orthanc_server import PACS_AET, SITE_AET, USER, PASSWORD, Orthanc, start_orthanc

logger = logging.getLogger("bench_pacs")
RESULTS = Path(__file__).resolve().parent / "results" / "pacs.json"
TARGET_FRACTION_OF_ARCHIVE = 0.5


def _archive_download(server: Orthanc, target: Path) -> float:
    """Seconds to download every study's ZIP archive to ``target``."""
    started = time.perf_counter()
    for study_id in server.rest("GET", "/studies").json():
        response = server.rest("GET", f"/studies/{study_id}/archive", stream=True)
        with open(target / f"{study_id}.zip", "wb") as handle:
            for chunk in response.iter_content(1 << 20):
                handle.write(chunk)
    return time.perf_counter() - started


def _pull(config: PacsConfig, site_dir: Path, expected: int) -> float:
    started = time.perf_counter()
    result = pull_site(site_dir, config, progress=False)
    seconds = time.perf_counter() - started
    if result.failures or result.instances_retrieved != expected:
        raise RuntimeError(f"pull retrieved {result.instances_retrieved} of {expected}: {result.failures}")
    return seconds


def measure(server: Orthanc, work: Path, n_files: int, n_bytes: int, repeats: int) -> dict[str, Any]:
    """Interleaved archive downloads and pulls; MB/s medians and the pulls' fractions of the archive's."""
    site = work / "site"
    secrets = site / "secrets"
    configs = {
        "dicomweb": PacsConfig(protocol="dicomweb", url=server.dicomweb_url, user=USER),
        "dimse_get": PacsConfig(protocol="dimse", host="127.0.0.1", port=server.dicom_port, called_aet=PACS_AET,
                                calling_aet=SITE_AET),
    }
    seconds: dict[str, list[float]] = {"archive": [], **{name: [] for name in configs}}
    for _ in range(repeats):
        archive = work / "archive"
        shutil.rmtree(archive, ignore_errors=True)
        archive.mkdir()
        seconds["archive"].append(_archive_download(server, archive))
        for name, config in configs.items():
            shutil.rmtree(site, ignore_errors=True)
            secrets.mkdir(parents=True, mode=0o700)
            (secrets / "pacs-password").write_text(PASSWORD)
            (secrets / "pacs-password").chmod(0o600)
            seconds[name].append(_pull(config, site, n_files))
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    mb = n_bytes / 1e6
    return {
        "files": n_files, "megabytes": round(mb, 1),
        "seconds": {name: [round(v, 3) for v in values] for name, values in seconds.items()},
        "mb_per_s": {name: round(mb / value, 1) for name, value in medians.items()},
        "fraction_of_archive": {name: round(medians["archive"] / medians[name], 3) for name in configs},
        "target_fraction_of_archive": TARGET_FRACTION_OF_ARCHIVE,
        "meets_target": {name: medians["archive"] / medians[name] >= TARGET_FRACTION_OF_ARCHIVE for name in configs},
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write ``benchmarks/results/pacs.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument("--slices", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="fedmpt-bench-pacs-") as tmp:
        work = Path(tmp)
        n_files = write_site(work / "source", n_series=args.studies, n_slices=args.slices)
        files = sorted((work / "source" / "dicom").rglob("*.dcm"))
        server = start_orthanc(work / "orthanc")
        try:
            for path in files:
                server.upload(path)
            results = measure(server, work, n_files, sum(p.stat().st_size for p in files), args.repeats)
        finally:
            server.stop()
    results = {"benchmark": "pacs_retrieval", "studies": args.studies, "slices_per_study": args.slices,
               "repeats": args.repeats, **results, "machine": machine}
    results["machine"]["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    results["machine"]["nice"] = os.nice(0)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    logger.info("archive %.1f MB/s; DICOMweb %.3fx, DIMSE C-GET %.3fx of it", results["mb_per_s"]["archive"],
                results["fraction_of_archive"]["dicomweb"], results["fraction_of_archive"]["dimse_get"])
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # one line per DIMSE message otherwise
    main()
