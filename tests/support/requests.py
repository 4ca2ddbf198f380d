"""Ready-made request parameters and node key material."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ROLE_ARN = "arn:aws:iam::123456789012:role/aws-opsworks-cm-service-role"
PROFILE_ARN = "arn:aws:iam::123456789012:instance-profile/aws-opsworks-cm-ec2-role"


def create_server_params(name: str, engine: str = "Puppet", **extra) -> dict:
    return {
        "ServerName": name,
        "Engine": engine,
        "InstanceProfileArn": PROFILE_ARN,
        "InstanceType": "m5.large",
        "ServiceRoleArn": ROLE_ARN,
        **extra,
    }


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def public_pem(key) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def make_csr(certname: str, key=None, extensions=(), common_name: str | None = None) -> str:
    key = key or rsa_key()
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or certname)])
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
