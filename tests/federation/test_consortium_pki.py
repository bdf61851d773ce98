"""Consortium set-up: CA, SuperLink certificate, keys 0600 and never printed, site bundles."""

import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key
from typer.testing import CliRunner

from cli.main import app
from federation.deploy.consortium import Consortium, add_site, init_consortium
from federation.deploy.pki import certificate_names
from federation.server_app import load_registry


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_init_writes_ca_server_cert_and_signing_key_0600(tmp_path):
    consortium = init_consortium(tmp_path / "c", superlink_port=19999, fleet_port=19998,
                                 advertise="aggregator.example.org:443", extra_names=("10.0.0.5",))

    ca = x509.load_pem_x509_certificate(consortium.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(consortium.server_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert server.issuer == ca.subject
    assert {"localhost", "127.0.0.1", "aggregator.example.org", "10.0.0.5"} <= set(
        certificate_names(consortium.server_cert))
    for private in (consortium.root / "ca" / "ca.key", consortium.server_key, consortium.signing_key):
        assert _mode(private) == 0o600
    assert Consortium.load(tmp_path / "c").superlink_address == "127.0.0.1:19999"
    with pytest.raises(FileExistsError):
        init_consortium(tmp_path / "c")


def test_site_bundle_holds_what_a_hospital_needs_and_waits_for_registration(tmp_path):
    consortium = init_consortium(tmp_path / "c", superlink_port=1)  # nothing listens on port 1

    bundle = add_site(consortium, "hospital-a")

    assert {p.name for p in bundle.iterdir()} == {
        "bundle.toml", "ca.crt", "node_key", "node_key.pub", "aggregator_signing.pub", "approved_fabs.txt"}
    assert _mode(bundle / "node_key") == 0o600
    key = load_ssh_private_key((bundle / "node_key").read_bytes(), password=None)
    assert key.curve.name == "secp384r1"
    load_ssh_public_key((bundle / "node_key.pub").read_bytes())
    assert (bundle / "ca.crt").read_bytes() == consortium.ca_cert.read_bytes()
    assert consortium.registry()["hospital-a"]["node_id"] is None  # registered at aggregator start
    with pytest.raises(ValueError, match="lower-case"):
        add_site(consortium, "Hospital A")


def test_registry_is_what_the_server_app_trusts(tmp_path):
    consortium = init_consortium(tmp_path / "c", superlink_port=1)
    add_site(consortium, "hospital-a", patients=40)
    add_site(consortium, "hospital-b")
    add_site(consortium, "hospital-c", patients=900)
    registry = consortium.registry()
    registry["hospital-a"]["node_id"] = 111
    registry["hospital-b"].update(node_id=222, revoked=True)
    registry["hospital-c"]["node_id"] = 333
    consortium.save_registry(registry)

    names, sizes = load_registry(str(consortium.registry_path))

    assert names == {111: "hospital-a", 333: "hospital-c"}
    assert sizes == {111: 40, 333: 900}  # the revoked site's missing size does not matter


def test_cli_never_prints_key_material(tmp_path):
    runner = CliRunner()

    init = runner.invoke(app, ["consortium", "init", str(tmp_path / "c"), "--superlink-port", "1"])
    added = runner.invoke(app, ["consortium", "add-site", str(tmp_path / "c"), "hospital-a"])

    assert init.exit_code == 0 and added.exit_code == 0, init.output + added.output
    for output in (init.output, added.output):
        assert "PRIVATE KEY" not in output and "ssh-" not in output and "BEGIN" not in output
    assert json.loads((tmp_path / "c" / "registry.json").read_text())["hospital-a"]["node_id"] is None


def test_pyproject_app_config_lists_every_federation_config_key():
    # `flwr run` rejects run-config keys missing from [tool.flwr.app.config] ("Invalid run
    # configuration"), and the ServerApp rejects keys FederationConfig does not know.
    import dataclasses
    import tomllib

    from federation.config import FederationConfig
    from federation.deploy.rounds import APP_DIR

    listed = tomllib.loads((APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]
    expected = {f.name.replace("_", "-"): f.default for f in dataclasses.fields(FederationConfig)}
    assert listed == expected
