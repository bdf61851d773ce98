"""DIMSE access to a PACS with ``pynetdicom``: C-ECHO, C-FIND (study root), C-GET or C-MOVE.

C-GET brings the instances back over the query association; C-MOVE makes the PACS send them to
this site's own C-STORE SCP (``calling_aet`` on ``store_port``), for a PACS that serves only
C-MOVE. Each storage class is proposed once per transfer syntax, so the PACS can send every
instance in the syntax it stores it in; the received data set is written as it came, behind a
File Meta header. The pull never sends C-STORE to the PACS: it never writes to it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    BasicTextSRStorage,
    ComprehensiveSRStorage,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedSRStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from client_site.pacs.config import PacsConfig
from client_site.pacs.errors import PacsAccessRefused, PacsError, PacsUnavailable
from client_site.pacs.source import SeriesRef, StoreInstance, StudyRef

STORAGE_CLASSES = (CTImageStorage, EnhancedCTImageStorage, BasicTextSRStorage, EnhancedSRStorage,
                   ComprehensiveSRStorage)
TRANSFER_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                     ExplicitVRBigEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
                     JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless)
_PENDING = (0xFF00, 0xFF01)
_OUT_OF_RESOURCES = 0xA702
# A-ASSOCIATE-RJ diagnostics from the service user (PS3.8 section 9.3.4).
_REJECT_REASONS = {2: "calling AE title not recognised", 3: "calling AE title not recognised",
                   7: "called AE title not recognised", 1: "no reason given"}


class DimseSource:
    """A PACS reached over DIMSE (see :class:`client_site.pacs.source.PacsSource`).

    Parameters
    ----------
    config : PacsConfig
        ``protocol = "dimse"``; ``host``, ``port``, ``called_aet``, ``calling_aet``, ``retrieve``,
        ``store_port``/``store_bind`` for C-MOVE, filters, ``timeout_s``.
    """

    def __init__(self, config: PacsConfig) -> None:
        self.config = config
        self._ae = AE(ae_title=config.calling_aet)
        for name in ("acse_timeout", "dimse_timeout", "network_timeout", "connection_timeout"):
            setattr(self._ae, name, config.timeout_s)
        self._ae.maximum_pdu_size = 0  # no limit: fewer, larger PDUs

    def verify(self) -> str:
        with self._association([build_context(Verification)]) as assoc:
            status = assoc.send_c_echo()
            self._check_final(status, "C-ECHO")
        return f"DIMSE: C-ECHO to {self.config.address} as {self.config.calling_aet} succeeded"

    def find_studies(self) -> list[StudyRef]:
        query = _query("STUDY", StudyInstanceUID="", AccessionNumber="", ModalitiesInStudy=self.config.modality,
                       StudyDate=_date_range(self.config))
        found = self._find(query)
        studies = [StudyRef(study_uid=str(d.get("StudyInstanceUID", "")), accession=str(d.get("AccessionNumber", "")),
                            study_date=str(d.get("StudyDate", ""))) for d in found]
        return sorted((s for s in studies if s.study_uid), key=lambda s: (s.study_date, s.study_uid))

    def find_series(self, study: StudyRef) -> list[SeriesRef]:
        series_found = self._find(_query("SERIES", StudyInstanceUID=study.study_uid, SeriesInstanceUID="",
                                         Modality="", SeriesDescription=""))
        series = []
        for item in series_found:
            uid = str(item.get("SeriesInstanceUID", ""))
            instances = self._find(_query("IMAGE", StudyInstanceUID=study.study_uid, SeriesInstanceUID=uid,
                                          SOPInstanceUID=""))
            series.append(SeriesRef(study_uid=study.study_uid, series_uid=uid, modality=str(item.get("Modality", "")),
                                    description=str(item.get("SeriesDescription", "")),
                                    instance_uids=tuple(str(i.get("SOPInstanceUID", "")) for i in instances)))
        return series

    def retrieve(self, series: SeriesRef, instance_uids: list[str], store: StoreInstance) -> None:
        whole = set(instance_uids) == set(series.instance_uids)
        queries = ([_query("SERIES", StudyInstanceUID=series.study_uid, SeriesInstanceUID=series.series_uid)]
                   if whole else
                   [_query("IMAGE", StudyInstanceUID=series.study_uid, SeriesInstanceUID=series.series_uid,
                           SOPInstanceUID=uid) for uid in instance_uids])
        receiver = _Receiver(set(instance_uids), store)
        if self.config.retrieve == "get":
            self._get(queries, receiver)
        else:
            self._move(queries, receiver)
        receiver.raise_if_failed()
        missing = len(set(instance_uids) - receiver.stored)
        if missing:
            raise PacsError(f"the PACS sent {len(receiver.stored)} of {len(instance_uids)} instance(s) of a series; "
                            f"{missing} missing{receiver.pacs_comment}")

    def close(self) -> None:
        self._ae.shutdown()

    def _find(self, query: Dataset) -> list[Dataset]:
        found = []
        with self._association([build_context(StudyRootQueryRetrieveInformationModelFind)]) as assoc:
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if status and status.Status in _PENDING and identifier is not None:
                    found.append(identifier)
                else:
                    self._check_final(status, f"C-FIND ({query.QueryRetrieveLevel} level)")
        return found

    def _get(self, queries: list[Dataset], receiver: _Receiver) -> None:
        contexts = [build_context(StudyRootQueryRetrieveInformationModelGet)] + _storage_contexts()
        roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
        with self._association(contexts, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, receiver.on_store)]) as assoc:
            for query in queries:
                for status, _ in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
                    receiver.note_status(status, "C-GET")

    def _move(self, queries: list[Dataset], receiver: _Receiver) -> None:
        scp = AE(ae_title=self.config.calling_aet)
        for uid in STORAGE_CLASSES:
            scp.add_supported_context(uid, list(TRANSFER_SYNTAXES))
        server = scp.start_server((self.config.store_bind, self.config.store_port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, receiver.on_store)])
        try:
            with self._association([build_context(StudyRootQueryRetrieveInformationModelMove)]) as assoc:
                for query in queries:
                    for status, _ in assoc.send_c_move(query, self.config.calling_aet,
                                                       StudyRootQueryRetrieveInformationModelMove):
                        receiver.note_status(status, "C-MOVE")
        finally:
            server.shutdown()

    @contextmanager
    def _association(self, contexts: list[Any], **kwargs: Any) -> Iterator[Association]:
        cfg = self.config
        assoc = self._ae.associate(cfg.host, cfg.port, contexts=contexts, ae_title=cfg.called_aet, **kwargs)
        if not assoc.is_established:
            raise _association_error(assoc, cfg)
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()
        if assoc.is_aborted:
            raise PacsError(f"the PACS {cfg.address} aborted the association")

    def _check_final(self, status: Dataset, what: str) -> None:
        if not status:
            raise PacsError(f"{what} to {self.config.address}: no answer within {self.config.timeout_s:g} s "
                            "or the association was aborted")
        if status.Status != 0x0000:
            raise PacsError(f"{what} to {self.config.address} failed with status 0x{status.Status:04X}"
                            f"{_comment(status)}")


class _Receiver:
    """Stores the instances a C-GET or C-MOVE brings, and remembers what went wrong."""

    def __init__(self, wanted: set[str], store: StoreInstance) -> None:
        self.wanted, self._store = wanted, store
        self.stored: set[str] = set()
        self.store_error: Exception | None = None
        self.pacs_comment = ""

    def on_store(self, event: evt.Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        if uid not in self.wanted:
            return 0x0000
        try:
            self._store(uid, event.encoded_dataset(include_meta=True))
        except Exception as error:  # disk full, permissions: tell the PACS, report after the retrieval
            self.store_error = error
            return _OUT_OF_RESOURCES
        self.stored.add(uid)
        return 0x0000

    def note_status(self, status: Dataset, what: str) -> None:
        if not status:
            raise PacsError(f"{what}: no answer from the PACS or the association was aborted")
        if status.Status not in (*_PENDING, 0x0000):
            self.pacs_comment = f" ({what} status 0x{status.Status:04X}{_comment(status)})"

    def raise_if_failed(self) -> None:
        if self.store_error is not None:
            raise PacsError(f"could not write a retrieved instance: {self.store_error}") from self.store_error


def _storage_contexts() -> list[Any]:
    return [build_context(uid, syntax) for uid in STORAGE_CLASSES for syntax in TRANSFER_SYNTAXES]


def _query(level: str, **keys: str) -> Dataset:
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    return query


def _date_range(config: PacsConfig) -> str:
    if not (config.study_date_from or config.study_date_to):
        return ""
    return f"{config.study_date_from}-{config.study_date_to}"


def _comment(status: Dataset) -> str:
    comment = str(status.get("ErrorComment", "")).strip()
    return f": {comment}" if comment else ""


def _reachable(config: PacsConfig) -> bool:
    """Whether a TCP connection to the PACS opens (pynetdicom reports a refused one as an abort)."""
    try:
        with socket.create_connection((config.host, config.port), timeout=min(config.timeout_s, 5.0)):
            return True
    except OSError:
        return False


def _association_error(assoc: Association, config: PacsConfig) -> PacsUnavailable:
    where = f"the PACS at {config.host}:{config.port}"
    if assoc.is_rejected:
        primitive = assoc.acceptor.primitive
        diagnostic = getattr(primitive, "diagnostic", None)
        reason = _REJECT_REASONS.get(int(diagnostic), f"diagnostic {diagnostic}") if diagnostic else "no reason given"
        return PacsAccessRefused(f"{where} rejected the association ({reason}): check [pacs] called_aet "
                         f"({config.called_aet}) and that the PACS registers this site as {config.calling_aet} "
                         "from this host")
    if assoc.is_aborted and _reachable(config):
        # Some PACS close the connection right after A-ASSOCIATE-RJ, so the reason can be lost to an abort.
        return PacsAccessRefused(f"{where} aborted the association request: check [pacs] called_aet "
                         f"({config.called_aet}) and that the PACS registers this site as {config.calling_aet} "
                         "from this host")
    return PacsUnavailable(f"cannot reach {where} (no DICOM association): check [pacs] host and port, that the "
                     "PACS is up, and that the firewall lets this host connect to it")
