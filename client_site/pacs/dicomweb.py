"""DICOMweb access to a PACS with ``dicomweb-client``: QIDO-RS to search, WADO-RS to retrieve.

Instances are asked for as ``application/dicom`` in any transfer syntax (``*``), so the PACS sends
the files it stores, compressed or not, and they are written as received. Only GET requests are
made: the pull never writes to the PACS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from client_site.pacs.config import PacsConfig, auth_mode
from client_site.pacs.errors import PacsAccessRefused, PacsConfigError, PacsError, PacsUnavailable
from client_site.pacs.source import SeriesRef, StoreInstance, StudyRef

_ANY_SYNTAX = (("application/dicom", "*"),)
_STUDY_UID, _SERIES_UID, _SOP_UID = "0020000D", "0020000E", "00080018"
_ACCESSION, _STUDY_DATE, _MODALITY, _DESCRIPTION = "00080050", "00080020", "00080060", "0008103E"
_MODALITIES = "00080061"


class DicomwebSource:
    """A PACS reached over DICOMweb (see :class:`client_site.pacs.source.PacsSource`).

    Parameters
    ----------
    config : PacsConfig
        ``protocol = "dicomweb"``; ``url``, ``user``/``auth``, ``ca_bundle``, filters, ``timeout_s``.
    secret : str | None
        Password (basic) or token (bearer) from the site's secret file.
    """

    def __init__(self, config: PacsConfig, secret: str | None) -> None:
        self.config = config
        session = requests.Session()
        mode = auth_mode(config, secret)
        if mode != "none" and not secret:
            raise PacsConfigError(f"[pacs] auth is {mode!r} but SITE_DIR/secrets/pacs-password is missing; "
                                  "write the password or token into it (mode 0600)")
        if mode == "basic":
            session.auth = (config.user, secret or "")
        elif mode == "bearer":
            session.headers["Authorization"] = f"Bearer {secret}"
        if config.ca_bundle:
            session.verify = config.ca_bundle
        self._client = DICOMwebClient(url=config.url.rstrip("/"), session=session, timeout=config.timeout_s)
        # Retry only what a busy server answers (429, 503, ...), a few times, quickly.
        self._client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=200)
        self._user, self._session = config.user, session

    def verify(self) -> str:
        self._call("search studies", self._client.search_for_studies, limit=1, fields=[_STUDY_DATE])
        who = f" as user '{self._user}'" if self._user else ""
        return f"DICOMweb: QIDO-RS search at {self.config.url} answered{who}"

    def find_studies(self) -> list[StudyRef]:
        filters: dict[str, Any] = {"ModalitiesInStudy": self.config.modality}
        if self.config.study_date_from or self.config.study_date_to:
            filters["StudyDate"] = f"{self.config.study_date_from}-{self.config.study_date_to}"
        found = self._search_all("search studies", self._client.search_for_studies, _STUDY_UID,
                                 search_filters=filters, fields=[_ACCESSION, _STUDY_DATE, _MODALITIES])
        studies = [StudyRef(study_uid=_value(item, _STUDY_UID), accession=_value(item, _ACCESSION),
                            study_date=_value(item, _STUDY_DATE)) for item in found
                   if self.config.modality in _values(item, _MODALITIES, default=[self.config.modality])]
        return sorted((s for s in studies if s.study_uid), key=lambda s: (s.study_date, s.study_uid))

    def find_series(self, study: StudyRef) -> list[SeriesRef]:
        found = self._search_all("search series", self._client.search_for_series, _SERIES_UID,
                                 study_instance_uid=study.study_uid, fields=[_MODALITY, _DESCRIPTION])
        series = []
        for item in found:
            series_uid = _value(item, _SERIES_UID)
            instances = self._search_all("search instances", self._client.search_for_instances, _SOP_UID,
                                         study_instance_uid=study.study_uid, series_instance_uid=series_uid)
            series.append(SeriesRef(study_uid=study.study_uid, series_uid=series_uid,
                                    modality=_value(item, _MODALITY), description=_value(item, _DESCRIPTION),
                                    instance_uids=tuple(_value(i, _SOP_UID) for i in instances)))
        return series

    def retrieve(self, series: SeriesRef, instance_uids: list[str], store: StoreInstance) -> None:
        wanted = set(instance_uids)
        if wanted == set(series.instance_uids):  # the whole series in one streamed multipart response
            datasets: Iterable[Dataset] = self._call(
                "retrieve series", self._client.iter_series, study_instance_uid=series.study_uid,
                series_instance_uid=series.series_uid, media_types=_ANY_SYNTAX)
            self._store_all(datasets, wanted, store)
            return
        for uid in instance_uids:  # resuming a series: only its missing instances
            dataset = self._call("retrieve instance", self._client.retrieve_instance,
                                 study_instance_uid=series.study_uid, series_instance_uid=series.series_uid,
                                 sop_instance_uid=uid, media_types=_ANY_SYNTAX)
            self._store_all([dataset], {uid}, store)

    def close(self) -> None:
        self._session.close()

    def _store_all(self, datasets: Iterable[Dataset], wanted: set[str], store: StoreInstance) -> None:
        try:
            for dataset in datasets:
                uid = str(dataset.SOPInstanceUID)
                if uid in wanted:
                    store(uid, dataset.buffer.getvalue())  # the bytes as received, not re-encoded
        except requests.RequestException as error:  # a streamed response can fail half-way
            raise _http_error(error, self.config, "retrieve series") from error

    def _search_all(self, action: str, method: Any, uid_tag: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every result of a QIDO-RS search, page after page while pages bring new UIDs.

        A server may cap one answer (then ``offset`` gives the next page) or ignore ``offset`` (then
        the second page repeats the first: Orthanc 1.10 does with ``ModalitiesInStudy``).
        """
        results: dict[str, dict[str, Any]] = {}
        while True:
            page = self._call(action, method, offset=len(results), **kwargs) if results else \
                self._call(action, method, **kwargs)
            new = {_value(item, uid_tag): item for item in page if _value(item, uid_tag) not in results}
            if not new:
                return list(results.values())
            results.update(new)

    def _call(self, action: str, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except requests.RequestException as error:
            raise _http_error(error, self.config, action) from error


def _value(item: dict[str, Any], tag: str) -> str:
    return _values(item, tag, default=[""])[0]


def _values(item: dict[str, Any], tag: str, *, default: list[str]) -> list[str]:
    values = item.get(tag, {}).get("Value")
    return [str(v) for v in values] if values else default


def _http_error(error: requests.RequestException, config: PacsConfig, action: str) -> PacsError:
    """One line for the user: what failed, the PACS's own answer, what to check."""
    url = config.url
    if isinstance(error, requests.exceptions.SSLError):
        return PacsAccessRefused(f"TLS verification of {url} failed: set [pacs] ca_bundle to the PEM file of the "
                         "hospital's certificate authority")
    if isinstance(error, requests.exceptions.ConnectionError):
        return PacsUnavailable(f"cannot reach the PACS at {url} (connection failed): check [pacs] url, that the "
                         "PACS is up, and that the firewall lets this host connect to it")
    if isinstance(error, requests.exceptions.Timeout):
        return PacsError(f"the PACS at {url} did not answer within {config.timeout_s:g} s ({action}); "
                         "raise [pacs] timeout_s or try later")
    response = error.response
    if response is None:
        return PacsError(f"{action} at {url} failed: {type(error).__name__}")
    code = response.status_code
    if code == 401:
        return PacsAccessRefused(f"the PACS at {url} refused the credentials (HTTP 401) of user '{config.user}': "
                         "check [pacs] user and SITE_DIR/secrets/pacs-password")
    if code == 403:
        return PacsAccessRefused(f"the PACS at {url} refused access (HTTP 403) to {action}: ask the PACS "
                         "administrator for query/retrieve rights for this account")
    return PacsError(f"{action}: the PACS at {url} answered HTTP {code} {response.reason}{_pacs_message(response)}")


def _pacs_message(response: requests.Response) -> str:
    """The error text the PACS sent, if short (Orthanc sends JSON with a Message)."""
    try:
        body = response.json()
        text = str(body.get("Message") or body.get("Details") or "") if isinstance(body, dict) else ""
    except (ValueError, json.JSONDecodeError):
        text = response.text.strip().splitlines()[0] if response.text.strip() else ""
    return f" ({text[:200]})" if text else ""
