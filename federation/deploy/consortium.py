"""A consortium directory: PKI, the aggregator's keys, the site registry and site bundles.

::

    DIR/consortium.toml          name and addresses (see :class:`Consortium`)
    DIR/ca/ca.key (0600), ca.crt consortium CA
    DIR/superlink/server.key (0600), server.pem   TLS of the SuperLink and the Fleet proxy
    DIR/aggregator/signing_key.pem (0600), .pub   Ed25519: signs global models and checkpoints
    DIR/aggregator/flwr-home/     FLWR_HOME of the lead's flwr commands (Control API connection)
    DIR/superlink/state.db        SuperLink database (runs, registered nodes); DIR/superlink is
                                  owned by the SuperLink's user when it runs as one
    DIR/aggregator/results.sqlite, checkpoints/   written by the ServerApp
    DIR/registry.json             site name -> {node_id, public_key, revoked}: who is who
    DIR/runs/<run>.json           what `fedmpt rounds start` launched
    DIR/sites/<name>/             a site bundle, to hand to the hospital (then delete here)

Site identity is the registry: the node id Flower gives a public key at
``flwr supernode register`` is recorded against the site name chosen here, and the ServerApp
names a reply's site from it (never from the node's self-declared config).
"""

from __future__ import annotations

import json
import re
import ssl
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.signing import generate_signing_key
from federation.deploy.flower_cli import CONNECTION, run_flwr_json, write_connection
from federation.deploy.pki import make_ca, make_node_key, make_server_cert
from infra.atomic_files import write_json_atomic

CONSORTIUM_FILE = "consortium.toml"
BUNDLE_FILE = "bundle.toml"
APPROVED_FABS = "approved_fabs.txt"
_SITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Consortium:
    """A consortium directory and its settings.

    Parameters
    ----------
    root : Path
        The directory.
    name : str
        Consortium (organisation) name in certificates.
    superlink_port : int
        SuperLink's single HTTPS port (Fleet, Control, runtime APIs), bound to 127.0.0.1.
    fleet_host, fleet_port : str, int
        Where the Fleet proxy listens: the only port sites reach.
    advertised : str
        ``host:port`` written into site bundles; its host must be in the TLS certificate.
    """

    root: Path
    name: str
    superlink_port: int
    fleet_host: str
    fleet_port: int
    advertised: str

    # -- paths ------------------------------------------------------------------------
    @property
    def ca_cert(self) -> Path:
        return self.root / "ca" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca" / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "superlink" / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "superlink" / "server.key"

    @property
    def aggregator_dir(self) -> Path:
        return self.root / "aggregator"

    @property
    def signing_key(self) -> Path:
        return self.aggregator_dir / "signing_key.pem"

    @property
    def flwr_home(self) -> Path:
        return self.aggregator_dir / "flwr-home"

    @property
    def database(self) -> Path:
        return self.root / "superlink" / "state.db"

    @property
    def registry_path(self) -> Path:
        return self.root / "registry.json"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def superlink_address(self) -> str:
        """Loopback address of the SuperLink (Control API included: never exposed)."""
        return f"127.0.0.1:{self.superlink_port}"

    def bundle_dir(self, site: str) -> Path:
        return self.root / "sites" / site

    # -- load ---------------------------------------------------------------------------
    @classmethod
    def load(cls, root: Path) -> Consortium:
        """Read ``DIR/consortium.toml``."""
        root = Path(root).resolve()
        path = root / CONSORTIUM_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `fedmpt consortium init {root}` first")
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return cls(root=root, name=data["consortium"]["name"],
                   superlink_port=int(data["superlink"]["port"]),
                   fleet_host=str(data["fleet"]["host"]), fleet_port=int(data["fleet"]["port"]),
                   advertised=str(data["fleet"]["advertised"]))

    # -- registry -----------------------------------------------------------------------
    def registry(self) -> dict[str, dict[str, Any]]:
        """Site name -> entry; empty before the first site."""
        if not self.registry_path.exists():
            return {}
        data: dict[str, dict[str, Any]] = json.loads(self.registry_path.read_text(encoding="utf-8"))
        return data

    def save_registry(self, registry: dict[str, dict[str, Any]]) -> None:
        """Atomically replace ``registry.json``."""
        write_json_atomic(self.registry_path, registry, sort_keys=True)


def init_consortium(
    root: Path, *, name: str = "fedmpt", superlink_port: int = 19300, fleet_host: str = "127.0.0.1",
    fleet_port: int = 19443, advertise: str = "", extra_names: tuple[str, ...] = (),
) -> Consortium:
    """Create the CA, the SuperLink certificate, the aggregator signing key and the config."""
    root = Path(root).resolve()
    if (root / CONSORTIUM_FILE).exists():
        raise FileExistsError(f"{root / CONSORTIUM_FILE} exists; a consortium is initialised once")
    advertised = advertise or f"{fleet_host}:{fleet_port}"
    advertised_host = advertised.rsplit(":", 1)[0].strip("[]")
    names = ["localhost", "127.0.0.1", advertised_host, *extra_names]
    if fleet_host not in ("0.0.0.0", "::"):
        names.append(fleet_host)
    (root / "ca").mkdir(parents=True, exist_ok=True)
    (root / "superlink").mkdir(exist_ok=True)
    ca_key, ca_cert = make_ca(root / "ca", organisation=name)
    make_server_cert(root / "superlink", ca_key=ca_key, ca_cert=ca_cert, names=names,
                     organisation=name)
    consortium = Consortium(root=root, name=name, superlink_port=superlink_port,
                            fleet_host=fleet_host, fleet_port=fleet_port, advertised=advertised)
    generate_signing_key(consortium.signing_key)
    (root / CONSORTIUM_FILE).write_text(
        f'[consortium]\nname = "{name}"\n\n'
        "# The SuperLink serves Fleet, Control and runtime APIs on one port; the Control API is\n"
        "# unauthenticated in Flower 1.41, so it is bound to loopback only.\n"
        f"[superlink]\nport = {superlink_port}\n\n"
        "# The TLS proxy that forwards /v1/fleet/* only: the one port sites must reach.\n"
        f'[fleet]\nhost = "{fleet_host}"\nport = {fleet_port}\nadvertised = "{advertised}"\n',
        encoding="utf-8",
    )
    write_connection(consortium.flwr_home, address=consortium.superlink_address,
                     root_certificates=consortium.ca_cert)
    consortium.runs_dir.mkdir(exist_ok=True)
    return consortium


def add_site(consortium: Consortium, site: str, *, public_key: Path | None = None,
             patients: int | None = None) -> Path:
    """Create a site bundle (CA cert, node key pair, aggregator key, config) and register it.

    With ``public_key``, the site made its own key pair and only its public half is
    registered (the better practice: the private key never leaves the hospital). ``patients``,
    the site's number of training patients as agreed with it, bounds its weight in the aggregate
    (:mod:`aggregator.example_weights`); without sizes for all sites, sites weigh equally.
    Registration needs the SuperLink running; otherwise it happens at the next
    ``fedmpt aggregator start``.
    """
    if not _SITE_NAME.match(site):
        raise ValueError(f"site name {site!r}: use lower-case letters, digits, '-' or '_'")
    if patients is not None and patients < 1:
        raise ValueError(f"--patients must be >= 1, got {patients}")
    registry = consortium.registry()
    if site in registry:
        raise FileExistsError(f"site {site!r} exists (revoked: {registry[site].get('revoked', False)})")
    bundle = consortium.bundle_dir(site)
    bundle.mkdir(parents=True)
    if public_key is None:
        node_pub = make_node_key(bundle / "node_key")
    else:
        node_pub = bundle / "node_key.pub"
        node_pub.write_bytes(Path(public_key).read_bytes())
    (bundle / "ca.crt").write_bytes(consortium.ca_cert.read_bytes())
    (bundle / "aggregator_signing.pub").write_bytes(consortium.signing_key.with_suffix(".pub").read_bytes())
    (bundle / APPROVED_FABS).write_text(
        "# FAB hashes (SHA-256) this site agreed to run, one per line: `fedmpt site approve HASH`.\n",
        encoding="utf-8")
    (bundle / BUNDLE_FILE).write_text(
        f'[site]\nname = "{site}"\nconsortium = "{consortium.name}"\n\n'
        f'[superlink]\n# The Fleet proxy of the aggregator (TLS, verified with ca.crt).\n'
        f'address = "{consortium.advertised}"\n',
        encoding="utf-8",
    )
    registry[site] = {"public_key": str(node_pub.relative_to(consortium.root)), "node_id": None,
                      "revoked": False, "patients": patients}
    consortium.save_registry(registry)
    if superlink_up(consortium):  # else: registered at the next `fedmpt aggregator start`
        register_pending(consortium)
    return bundle


def superlink_up(consortium: Consortium, *, timeout: float = 3.0) -> bool:
    """Whether the consortium's SuperLink answers on loopback."""
    context = ssl.create_default_context(cafile=str(consortium.ca_cert))
    url = f"https://{consortium.superlink_address}/health"
    try:
        with urllib.request.urlopen(url, context=context, timeout=timeout) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def register_pending(consortium: Consortium) -> list[str]:
    """Register every site without a node id with the running SuperLink; return their names."""
    registry = consortium.registry()
    done = []
    for site, entry in sorted(registry.items()):
        if entry.get("node_id") is not None or entry.get("revoked"):
            continue
        out = run_flwr_json(["supernode", "register", str(consortium.root / entry["public_key"]),
                             CONNECTION, "--name", site], flwr_home=consortium.flwr_home)
        entry["node_id"] = int(out["node-id"])
        done.append(site)
        consortium.save_registry(registry)
    return done


def revoke_site(consortium: Consortium, site: str) -> dict[str, Any]:
    """Unregister the site's node (kicking it if online) and mark it revoked in the registry."""
    registry = consortium.registry()
    if site not in registry:
        raise KeyError(f"no site {site!r} in {consortium.registry_path}")
    entry = registry[site]
    if entry.get("node_id") is not None and not entry.get("revoked"):
        run_flwr_json(["supernode", "unregister", str(entry["node_id"]), CONNECTION],
                      flwr_home=consortium.flwr_home)
    entry["revoked"] = True
    consortium.save_registry(registry)
    private = consortium.bundle_dir(site) / "node_key"
    private.unlink(missing_ok=True)  # a revoked key is useless; do not keep it around
    return entry
