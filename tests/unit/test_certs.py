"""The local control plane's certificates: who they name, what they are valid for, and that they chain."""

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

from buildfarm.dev import certs


@pytest.fixture(scope="module")
def generated() -> certs.ControlPlaneCerts:
    return certs.generate()


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _store(generated: certs.ControlPlaneCerts) -> Store:
    return Store([_cert(generated.ca.cert_pem)])


def test_admin_is_in_system_masters(generated: certs.ControlPlaneCerts) -> None:
    subject = _cert(generated.admin.cert_pem).subject

    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["buildfarm-admin"]


def test_serving_cert_names_loopback(generated: certs.ControlPlaneCerts) -> None:
    sans = _cert(generated.serving.cert_pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)

    assert sans.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert sans.value.get_values_for_type(x509.DNSName) == ["localhost"]


def test_serving_cert_verifies_against_the_ca_for_127_0_0_1(generated: certs.ControlPlaneCerts) -> None:
    verifier = (
        PolicyBuilder()
        .store(_store(generated))
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )

    chain = verifier.verify(_cert(generated.serving.cert_pem), [])

    assert chain[-1] == _cert(generated.ca.cert_pem)


def test_admin_cert_verifies_as_a_client_of_the_ca(generated: certs.ControlPlaneCerts) -> None:
    # Kubernetes identifies clients by subject; the Web PKI defaults would also demand a SAN.
    client_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    verifier = (
        PolicyBuilder()
        .store(_store(generated))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=client_policy)
        .build_client_verifier()
    )

    verified = verifier.verify(_cert(generated.admin.cert_pem), [])

    assert verified.chain[-1] == _cert(generated.ca.cert_pem)


def test_each_leaf_is_only_good_for_its_own_purpose(generated: certs.ControlPlaneCerts) -> None:
    def usages(pem: bytes) -> list[x509.ObjectIdentifier]:
        return list(_cert(pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)

    assert usages(generated.serving.cert_pem) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert usages(generated.admin.cert_pem) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_service_account_keys_are_a_pair(generated: certs.ControlPlaneCerts) -> None:
    private = serialization.load_pem_private_key(generated.service_account_key_pem, password=None)

    derived = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    assert derived == generated.service_account_public_pem


def test_written_private_keys_are_owner_only(generated: certs.ControlPlaneCerts, tmp_path: Path) -> None:
    files = certs.write(generated, tmp_path / "pki")

    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "pki").iterdir()}

    private = {
        files.ca_key.name,
        files.serving_key.name,
        files.admin_key.name,
        files.service_account_key.name,
    }
    assert {name: mode for name, mode in modes.items() if name in private} == dict.fromkeys(private, 0o600)
    assert files.ca_cert.read_bytes() == generated.ca.cert_pem
