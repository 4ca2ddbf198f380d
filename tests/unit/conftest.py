"""A Puppet CA (2048 bits, made once) for the PKI unit tests."""

from datetime import datetime, timezone

import pytest
from cryptography import x509

from opscm.pki import CaSigner, create_ca

CA_NOW = datetime(2024, 5, 1, 12, 30, 15, tzinfo=timezone.utc)


@pytest.fixture(scope="session")
def material():
    return create_ca("puppet.example.com", now=CA_NOW, key_bits=2048)


@pytest.fixture(scope="session")
def signer(material):
    return CaSigner(material.key_pem, material.cert_pem)


@pytest.fixture(scope="session")
def ca_cert(material):
    return x509.load_pem_x509_certificate(material.cert_pem.encode())
