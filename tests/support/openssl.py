"""The openssl CLI as an independent judge of certificates."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .requirements import require_openssl


def verify(tmp_path: Path, ca_pem: str, cert_pem: str, crl_pem: str | None = None) -> subprocess.CompletedProcess:
    require_openssl()
    (tmp_path / "ca.pem").write_text(ca_pem)
    (tmp_path / "cert.pem").write_text(cert_pem)
    command = ["openssl", "verify", "-x509_strict", "-purpose", "sslclient", "-CAfile", str(tmp_path / "ca.pem")]
    if crl_pem is not None:
        (tmp_path / "crl.pem").write_text(crl_pem)
        command += ["-crl_check", "-CRLfile", str(tmp_path / "crl.pem")]
    return subprocess.run([*command, str(tmp_path / "cert.pem")], capture_output=True, text=True, timeout=30)
