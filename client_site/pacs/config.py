"""The PACS connection of a site: the ``[pacs]`` table of ``site.toml`` and the secret beside it.

The password (HTTP basic auth) or token (bearer) lives only in ``SITE_DIR/secrets/pacs-password``,
readable by its owner only; never in ``site.toml``, on the command line or in a log.
"""

from __future__ import annotations

import dataclasses
import re
import stat
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from client_site.pacs.errors import PacsConfigError

PROTOCOLS = ("dicomweb", "dimse")
RETRIEVE_MODES = ("get", "move")
AUTH_MODES = ("basic", "bearer", "none")
SECRET_FILE = Path("secrets") / "pacs-password"
_AET = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")  # DICOM AE: 1-16 printable ASCII characters, no backslash


@dataclass(frozen=True)
class PacsConfig:
    """How to reach the hospital's PACS and which studies to pull.

    Parameters
    ----------
    protocol : str
        ``"dicomweb"`` (QIDO-RS / WADO-RS) or ``"dimse"`` (C-FIND / C-GET or C-MOVE).
    url : str
        DICOMweb base URL, e.g. ``https://pacs.example.org/dicom-web`` (dicomweb only).
    host, port : str, int
        PACS DICOM address (dimse only; default port 104).
    called_aet : str
        The PACS's AE title (dimse only).
    calling_aet : str
        This site's AE title, as registered at the PACS (default: ``"FEDMPT"``).
    retrieve : str
        ``"get"`` (C-GET on the query association) or ``"move"`` (C-MOVE to this site's own
        C-STORE SCP, for a PACS that does not serve C-GET) (default: ``"get"``).
    store_port : int
        Port of this site's C-STORE SCP for C-MOVE; the PACS must know it with ``calling_aet``.
    store_bind : str
        Address the C-STORE SCP listens on (default: ``"0.0.0.0"``; the PACS connects to it).
    user : str
        Account name for HTTP basic auth (dicomweb).
    auth : str
        ``"basic"`` (user + password file), ``"bearer"`` (the file holds a token) or ``"none"``;
        default: ``"basic"`` when ``user`` is set, else ``"bearer"`` when the secret file exists,
        else ``"none"``.
    ca_bundle : str
        PEM file of the certificate authorities to trust for HTTPS (default: the system's).
    modality : str
        Studies must contain a series of this modality (default: ``"CT"``).
    study_date_from, study_date_to : str
        Inclusive study-date range, ``YYYYMMDD`` (default: no bound).
    series_description : str
        Only image series whose description contains this text, case-insensitive (default: all).
    max_studies : int
        At most this many studies retrieved per pull, oldest first (default: 0, no limit).
    timeout_s : float
        Network timeout per request or DIMSE message, seconds (default: 60).
    """

    protocol: str
    url: str = ""
    host: str = ""
    port: int = 104
    called_aet: str = ""
    calling_aet: str = "FEDMPT"
    retrieve: str = "get"
    store_port: int = 0
    store_bind: str = "0.0.0.0"
    user: str = ""
    auth: str = ""
    ca_bundle: str = ""
    modality: str = "CT"
    study_date_from: str = ""
    study_date_to: str = ""
    series_description: str = ""
    max_studies: int = 0
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise PacsConfigError(f"[pacs] protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol == "dicomweb" and not re.match(r"^https?://", self.url):
            raise PacsConfigError(f"[pacs] url must start with http:// or https:// for DICOMweb, got {self.url!r}")
        if self.protocol == "dimse":
            if not self.host:
                raise PacsConfigError("[pacs] host is empty: set host and port (or --dimse HOST:PORT)")
            if not _AET.match(self.called_aet or ""):
                raise PacsConfigError(f"[pacs] called_aet must be the PACS's AE title (1-16 characters), "
                                      f"got {self.called_aet!r}")
            if self.retrieve not in RETRIEVE_MODES:
                raise PacsConfigError(f"[pacs] retrieve must be 'get' or 'move', got {self.retrieve!r}")
            if self.retrieve == "move" and not 0 < self.store_port < 65536:
                raise PacsConfigError("[pacs] retrieve = 'move' needs store_port: the port of this site's "
                                      "C-STORE SCP, registered at the PACS with calling_aet")
        if not 0 < self.port < 65536:
            raise PacsConfigError(f"[pacs] port must be 1-65535, got {self.port}")
        if not _AET.match(self.calling_aet):
            raise PacsConfigError(f"[pacs] calling_aet must be 1-16 characters, got {self.calling_aet!r}")
        if self.auth and self.auth not in AUTH_MODES:
            raise PacsConfigError(f"[pacs] auth must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}")
        for name in ("study_date_from", "study_date_to"):
            value = getattr(self, name)
            if value and not re.fullmatch(r"\d{8}", value):
                raise PacsConfigError(f"[pacs] {name} must be a date YYYYMMDD or YYYY-MM-DD, got {value!r}")
        if self.max_studies < 0:
            raise PacsConfigError(f"[pacs] max_studies must be >= 0 (0: no limit), got {self.max_studies}")
        if self.ca_bundle and not Path(self.ca_bundle).is_file():
            raise PacsConfigError(f"[pacs] ca_bundle {self.ca_bundle} is not a file")

    @property
    def address(self) -> str:
        """Where the PACS is, for messages (never holds a credential)."""
        return self.url if self.protocol == "dicomweb" else f"{self.called_aet}@{self.host}:{self.port}"


def normalize_date(value: str) -> str:
    """``YYYY-MM-DD`` or ``YYYYMMDD`` -> ``YYYYMMDD`` (empty stays empty)."""
    return value.replace("-", "").strip()


def load_pacs_config(site_dir: Path, **overrides: Any) -> PacsConfig:
    """Read ``[pacs]`` of ``site_dir/site.toml`` and apply non-empty ``overrides`` (command-line flags).

    Raises
    ------
    PacsConfigError
        If the table has an unknown key or a bad value, or neither it nor the overrides give a protocol.
    """
    path = Path(site_dir) / "site.toml"
    table: dict[str, Any] = {}
    if path.is_file():
        try:
            table = dict(tomllib.loads(path.read_text(encoding="utf-8")).get("pacs", {}))
        except tomllib.TOMLDecodeError as error:
            raise PacsConfigError(f"{path} is not valid TOML: {error}") from error
    for secret_key in ("password", "token"):
        if secret_key in table:
            raise PacsConfigError(f"{path}: remove [pacs] {secret_key}; put it in {Path(site_dir) / SECRET_FILE} "
                                  "(mode 0600) instead")
    known = {f.name for f in dataclasses.fields(PacsConfig)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise PacsConfigError(f"{path}: unknown [pacs] key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    table.update({key: value for key, value in overrides.items() if value not in (None, "")})
    if "protocol" not in table:
        raise PacsConfigError(f"no PACS configured: add a [pacs] table to {path} (see docs/site-guide.md, "
                              "'Connect to your PACS') or pass --dicomweb URL or --dimse HOST:PORT")
    for name in ("study_date_from", "study_date_to"):
        table[name] = normalize_date(str(table.get(name, "")))
    try:
        return PacsConfig(**table)
    except TypeError as error:
        raise PacsConfigError(f"{path}: [pacs] has a value of the wrong type ({error})") from error


def load_secret(site_dir: Path) -> str | None:
    """The password or token in ``SITE_DIR/secrets/pacs-password``, or None if there is no such file.

    Raises
    ------
    PacsConfigError
        If others than its owner may read the file, or it is empty.
    """
    path = Path(site_dir) / SECRET_FILE
    if not path.exists():
        return None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PacsConfigError(f"{path} is readable by others (mode {mode:04o}); run: chmod 600 {path}")
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise PacsConfigError(f"{path} is empty; write the PACS password or token into it")
    return secret


def auth_mode(config: PacsConfig, secret: str | None) -> str:
    """The effective authentication: the configured one, else inferred from ``user`` and the secret file."""
    if config.auth:
        return config.auth
    if config.user:
        return "basic"
    return "bearer" if secret else "none"

