"""Preflight at a hospital: is everything in place before the SuperNode dials the aggregator?

:func:`check_site` runs every check in order and stops at the first that fails, so the reason
printed is the first thing to fix: the site directory and its ``site.toml``, the cache and the
preset it was ingested to, the privacy budget left, the bundle's CA, node key and aggregator
key, the approval list, and a TLS handshake with the SuperLink (Fleet proxy) address,
verified against the bundle's CA.
"""

from __future__ import annotations

import json
import socket
import ssl
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from federation.deploy.approval import approved
from federation.deploy.consortium import BUNDLE_FILE

MISSING, INVALID, BUDGET, UNREACHABLE, REFUSED = "missing", "invalid", "budget", "unreachable", "refused"


class PreflightError(RuntimeError):
    """A check failed; ``kind`` says which family (missing, invalid, budget, unreachable, refused)."""

    def __init__(self, kind: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.kind, self.message, self.hint = kind, message, hint


@dataclass
class Preflight:
    """What the checks found (each line a passed check, also given to ``report``), site and address."""

    report: Callable[[str], object] = lambda line: None
    site: str = ""  # the name in site.toml
    bundle_site: str = ""  # the name the consortium registered (bundle.toml): the site's identity
    address: str = ""
    passed: list[str] = field(default_factory=list)

    def ok(self, line: str) -> None:
        """Record a passed check."""
        self.passed.append(line)
        self.report(line)


def _site(site_dir: Path, found: Preflight) -> None:
    from client_site.layout import SiteLayout
    from client_site.site_config import load_site_config
    from privacy.ledger import PrivacyLedger

    if not site_dir.is_dir():
        raise PreflightError(MISSING, f"site directory {site_dir} does not exist",
                             "pass --data the folder you ran `fedmpt site init` and `fedmpt ingest` on")
    try:
        config = load_site_config(site_dir)
    except FileNotFoundError as e:
        raise PreflightError(MISSING, str(e), "create it with `fedmpt site init`") from None
    except ValueError as e:
        raise PreflightError(INVALID, str(e), "fix site.toml (see docs/site-guide.md)") from None
    found.site = config.name
    found.ok(f"site directory {site_dir} ({config.name})")
    found.ok(_cache(site_dir))
    ledger = PrivacyLedger(SiteLayout(site_dir).ledger_path, mechanism=config.accountant)
    spent = ledger.epsilon(delta=config.budget.delta)
    if spent >= config.budget.epsilon:
        raise PreflightError(BUDGET, f"{config.name} has spent epsilon {spent:.3f} of its budget "
                                     f"{config.budget.epsilon:g}: every training task would be refused",
                             "a larger budget is a decision of the site's DPO (site.toml), not a fix")
    found.ok(f"privacy budget: epsilon {spent:.3f} spent of {config.budget.epsilon:g}")


def _cache(site_dir: Path) -> str:
    from federation.presets import PRESETS

    index = site_dir / "cache" / "index.json"
    if not index.is_file():
        raise PreflightError(MISSING, f"{index} does not exist: the site has not been ingested",
                             f"run `fedmpt ingest {site_dir} --preset PRESET` (the preset of the runs)")
    payload = json.loads(index.read_text(encoding="utf-8"))
    shape = list(payload.get("preprocess", {}).get("shape", []))
    presets = [name for name, p in PRESETS.items() if list(p.preprocess.shape) == shape]
    studies = len(payload.get("studies", []))
    if not presets or studies == 0:
        raise PreflightError(INVALID, f"{index}: {studies} studies on grid {shape}, which is no preset's",
                             f"re-run `fedmpt ingest {site_dir} --preset PRESET`")
    return f"cache: {studies} studies ingested for preset {', '.join(presets)}"


def _bundle(bundle: Path, found: Preflight, superlink: str | None) -> None:
    if not (bundle / BUNDLE_FILE).is_file():
        raise PreflightError(MISSING, f"{bundle} is not a site bundle (no {BUNDLE_FILE})",
                             "pass the folder `fedmpt consortium add-site` made for this site")
    info = tomllib.loads((bundle / BUNDLE_FILE).read_text(encoding="utf-8"))
    found.address = superlink or str(info["superlink"]["address"])
    checks = (("ca.crt", "the consortium CA certificate", lambda b: x509.load_pem_x509_certificate(b)),
              ("node_key", "the site's private node key", lambda b: load_ssh_private_key(b, None)),
              ("aggregator_signing.pub", "the aggregator's public key", lambda b: b))
    for name, what, parse in checks:
        path = bundle / name
        if not path.is_file():
            raise PreflightError(MISSING, f"{path} is missing: {what}",
                                 "copy the whole bundle from the consortium lead again")
        try:
            parse(path.read_bytes())
        except (ValueError, TypeError) as e:
            raise PreflightError(INVALID, f"{path} is not {what}: {e}",
                                 "copy the whole bundle from the consortium lead again") from None
    found.bundle_site = str(info["site"]["name"])
    found.ok(f"bundle {bundle} (site {found.bundle_site}, dials {found.address})")
    hashes = approved(bundle)
    found.ok(f"approved app bundles: {len(hashes)}" + ("" if hashes else
                        " (every task will be refused until `fedmpt site approve HASH`)"))


def _reach(address: str, ca_cert: Path, found: Preflight, timeout: float) -> None:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version()
    except ssl.SSLCertVerificationError as e:
        raise PreflightError(REFUSED, f"{address} answered with a certificate the bundle's CA does not "
                                      f"vouch for ({e.verify_message})",
                             "check the address, or get the bundle again from the lead") from None
    except (OSError, ValueError) as e:
        raise PreflightError(UNREACHABLE, f"cannot reach the SuperLink at {address}: {e}",
                             "check the address (bundle.toml or --superlink), the aggregator and "
                             "the firewall") from None
    found.ok(f"SuperLink {address} reachable ({version}, certificate verified)")


def check_site(site_dir: Path, bundle: Path, *, superlink: str | None = None, timeout: float = 10.0,
               report: Callable[[str], object] = lambda line: None) -> Preflight:
    """Run every check, giving each passed one to ``report``; raise :class:`PreflightError` at the first failure."""
    found = Preflight(report)
    _site(Path(site_dir).resolve(), found)
    bundle = Path(bundle).resolve()
    _bundle(bundle, found, superlink)
    _reach(found.address, bundle / "ca.crt", found, timeout)
    return found
