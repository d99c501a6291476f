"""Certificates for the local control plane: a CA, kube-apiserver's serving cert, an admin client cert and
the service-account signing key. All keys are ECDSA P-256 (fast to generate, accepted everywhere here)."""

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ADMIN_USER: Final = "buildfarm-admin"
# RBAC lets this group do anything, so the admin needs no bindings (there is no controller-manager to
# bootstrap them anyway).
ADMIN_GROUP: Final = "system:masters"
DEFAULT_HOSTS: Final = ("127.0.0.1", "localhost")
DEFAULT_VALIDITY: Final = datetime.timedelta(days=365)
# Tolerates a clock that is a little behind the one that signed.
_BACKDATE: Final = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ControlPlaneCerts:
    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    service_account_key_pem: bytes
    service_account_public_pem: bytes


@dataclass(frozen=True)
class CertFiles:
    ca_cert: Path
    ca_key: Path  # kept: tests issue client certificates the API server and artifact service trust
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_public: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Self:
        return cls(
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            serving_cert=directory / "apiserver.crt",
            serving_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            service_account_key=directory / "sa.key",
            service_account_public=directory / "sa.pub",
        )


def generate(
    hosts: Sequence[str] = DEFAULT_HOSTS, validity: datetime.timedelta = DEFAULT_VALIDITY
) -> ControlPlaneCerts:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = _new_key()
    ca_name = _name("buildfarm-dev-ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: x509.SubjectAlternativeName | None
    ) -> KeyPair:
        key = _new_key()
        builder = (
            _builder(subject, ca_name, key.public_key(), now, validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
            )
        )
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        return KeyPair(_cert_pem(builder.sign(ca_key, hashes.SHA256())), _key_pem(key))

    serving = leaf(_name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, _sans(hosts))
    admin = leaf(_name(ADMIN_USER, ADMIN_GROUP), ExtendedKeyUsageOID.CLIENT_AUTH, None)
    service_account_key = _new_key()
    return ControlPlaneCerts(
        ca=KeyPair(_cert_pem(ca_cert), _key_pem(ca_key)),
        serving=serving,
        admin=admin,
        service_account_key_pem=_key_pem(service_account_key),
        service_account_public_pem=service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def client_cert(
    ca: KeyPair,
    user: str,
    groups: Sequence[str] = (),
    validity: datetime.timedelta = DEFAULT_VALIDITY,
) -> KeyPair:
    """A client certificate for `user` (CN) in `groups` (O), signed by `ca`: the API server, and anything
    trusting its client CA, knows the bearer as that user."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
    subject = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, user)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), now, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def write(certs: ControlPlaneCerts, directory: Path) -> CertFiles:
    """Writes the PEM files kube-apiserver reads; private keys are readable by the owner only."""
    directory.mkdir(parents=True, exist_ok=True)
    files = CertFiles.in_directory(directory)
    write_file(files.ca_cert, certs.ca.cert_pem)
    write_file(files.ca_key, certs.ca.key_pem, private=True)
    write_file(files.serving_cert, certs.serving.cert_pem)
    write_file(files.serving_key, certs.serving.key_pem, private=True)
    write_file(files.admin_cert, certs.admin.cert_pem)
    write_file(files.admin_key, certs.admin.key_pem, private=True)
    write_file(files.service_account_key, certs.service_account_key_pem, private=True)
    write_file(files.service_account_public, certs.service_account_public_pem)
    return files


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    validity: datetime.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + validity)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _sans(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Writes a new file; `private` makes it readable by the owner only."""
    # Created anew with its final mode, so a private key is never readable by others, not even briefly.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(data)
