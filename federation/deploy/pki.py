"""The consortium's certificates and keys, made with ``cryptography``.

* CA: EC P-384, self-signed, ``BasicConstraints(ca=True)``; signs the SuperLink certificate.
* SuperLink/proxy TLS certificate: EC P-384, SAN DNS ``localhost`` + IP ``127.0.0.1`` plus the
  names sites use to reach the aggregator; key in PKCS#8.
* Node-authentication keys: EC P-384 in OpenSSH format, as ``flower-supernode
  --auth-supernode-private-key`` and ``flwr supernode register`` expect.

Every private key is written once with mode 0600 and never printed.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aggregator.signing import write_private_file

CURVE = ec.SECP384R1()
CA_DAYS, SERVER_DAYS = 3650, 825


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_ca(directory: Path, *, organisation: str) -> tuple[Path, Path]:
    """Write ``ca.key`` (0600) and ``ca.crt``; return their paths."""
    key = ec.generate_private_key(CURVE)
    now = dt.datetime.now(dt.timezone.utc)
    name = _name(f"{organisation} consortium CA", organisation)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    key_path = write_private_file(Path(directory) / "ca.key", _pkcs8(key))
    cert_path = Path(directory) / "ca.crt"
    cert_path.write_bytes(_pem(cert))
    return key_path, cert_path


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):  # keep order, drop duplicates
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_server_cert(
    directory: Path, *, ca_key: Path, ca_cert: Path, names: Sequence[str], organisation: str
) -> tuple[Path, Path]:
    """Write ``server.key`` (0600) and ``server.pem`` signed by the CA, valid for ``names``."""
    issuer_key = serialization.load_pem_private_key(Path(ca_key).read_bytes(), password=None)
    issuer = x509.load_pem_x509_certificate(Path(ca_cert).read_bytes())
    if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{ca_key}: expected an EC private key")
    key = ec.generate_private_key(CURVE)
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(_name(names[0], organisation))
        .issuer_name(issuer.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                       critical=False)
        .sign(issuer_key, hashes.SHA384())
    )
    key_path = write_private_file(Path(directory) / "server.key", _pkcs8(key))
    cert_path = Path(directory) / "server.pem"
    cert_path.write_bytes(_pem(cert))
    return key_path, cert_path


def make_node_key(private_path: Path) -> Path:
    """Write an OpenSSH EC P-384 node-authentication key pair; return the public key's path."""
    key = ec.generate_private_key(CURVE)
    write_private_file(private_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption()))
    public_path = Path(str(private_path) + ".pub")
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) + b"\n")
    return public_path


def certificate_names(cert_path: Path) -> list[str]:
    """DNS names and IP addresses a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
