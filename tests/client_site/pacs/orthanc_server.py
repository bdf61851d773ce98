"""A real Orthanc PACS (Debian's ``orthanc`` + ``orthanc-dicomweb``) for the tests, on loopback.

Orthanc reads a throwaway JSON config: HTTP only from this host (``RemoteAccessAllowed`` false),
basic authentication with one registered user, the DICOMweb plugin, a DICOM port that checks the
called AE title, and our site's AE registered in ``DicomModalities`` (as the C-MOVE destination and
the only SCU allowed to query and retrieve). It is filled through its REST API and ended by its pid.
Orthanc 1.10 has no option to bind its ports to one address; it refuses HTTP clients from other
hosts and DICOM peers whose AE title and address are not registered.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
PACS_AET = "TESTPACS"
SITE_AET = "FEDMPT"
USER, PASSWORD = "fedmpt-reader", "correct horse battery"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Orthanc:
    """A running Orthanc: its ports, credentials and process."""

    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    scp_port: int
    log_path: Path
    accepted: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def rest(self, method: str, path: str, **kwargs: object) -> requests.Response:
        """One REST call as the registered user; raises on an HTTP error."""
        response = requests.request(method, f"{self.url}{path}", auth=(USER, PASSWORD), timeout=60, **kwargs)
        response.raise_for_status()
        return response

    def upload(self, path: Path) -> bool:
        """POST one file to /instances; True if Orthanc stored it (it refuses a truncated file with 400)."""
        response = requests.post(f"{self.url}/instances", data=Path(path).read_bytes(), auth=(USER, PASSWORD),
                                 timeout=60)
        if response.status_code == 400:
            return False
        response.raise_for_status()
        self.accepted.append(Path(path))
        return True

    def stop(self) -> None:
        """End Orthanc by its pid (SIGTERM, then SIGKILL after 20 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_orthanc(workdir: Path) -> Orthanc:
    """Write a config into ``workdir``, start Orthanc and wait until its REST API answers.

    Raises
    ------
    RuntimeError
        If the packages are missing or Orthanc does not answer within START_TIMEOUT_S (with its log).
    """
    if shutil.which(ORTHANC) is None or not DICOMWEB_PLUGIN.is_file():
        raise RuntimeError(f"{ORTHANC} or {DICOMWEB_PLUGIN} is missing: run `make orthanc` "
                           "(apt-get install orthanc orthanc-dicomweb)")
    workdir.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port, scp_port = free_port(), free_port(), free_port()
    config = {
        "Name": "fedmpt-test-pacs",
        "StorageDirectory": str(workdir / "storage"),
        "IndexDirectory": str(workdir / "index"),
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "HttpsCACertificates": "",
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": "127.0.0.1",
                     "Ssl": False},
        "DicomServerEnabled": True,
        "DicomAet": PACS_AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": True,
        "DicomCheckModalityHost": True,
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
        "DicomAlwaysAllowFind": False,
        "DicomAlwaysAllowGet": False,
        "DicomAlwaysAllowMove": False,
        "DicomModalities": {"fedmpt": {"AET": SITE_AET, "Host": "127.0.0.1", "Port": scp_port,
                                       "AllowStore": False}},
        "SaveJobs": False,
        "HttpThreadsCount": 8,
        "StableAge": 1,
    }
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    log_path = workdir / "orthanc.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log, stderr=subprocess.STDOUT,
                                   cwd=workdir, stdin=subprocess.DEVNULL)
    server = Orthanc(process=process, http_port=http_port, dicom_port=dicom_port, scp_port=scp_port,
                     log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            server.rest("GET", "/system")
            server.rest("GET", "/dicom-web/studies")
            return server
        except requests.RequestException:
            time.sleep(0.2)
    server.stop()
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"Orthanc did not start (exit code {process.poll()}); its log:\n{tail}")
