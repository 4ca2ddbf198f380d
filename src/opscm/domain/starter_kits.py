"""Starter kits (CreateServer's ``CHEF_STARTER_KIT`` / ``PUPPET_STARTER_KIT``): a zip, made in
memory, with a README, the configuration a user needs and the node user data script."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping

from .userdata import Target, fill, template, user_data_script

CHEF_STARTER_KIT = "CHEF_STARTER_KIT"
PUPPET_STARTER_KIT = "PUPPET_STARTER_KIT"
# Where the engines' attributes come from: CreateServer's once-only answer and DescribeServers.
CHEF_PIVOTAL_KEY = "CHEF_AUTOMATE_PIVOTAL_KEY"
PUPPET_CA_CERT = "PUPPET_API_CA_CERT"
PUPPET_CA_URL = "PUPPET_API_CA_URL"
PUPPET_CRL_URL = "PUPPET_API_CRL_URL"
# Fixed times keep a kit's bytes a function of its contents.
_ZIP_TIME = (2016, 11, 1, 0, 0, 0)


def kit_attribute_name(engine: str) -> str:
    return CHEF_STARTER_KIT if engine == "ChefAutomate" else PUPPET_STARTER_KIT


def kit_folder(target: Target) -> str:
    return f"{target.server_name}-starter-kit"


def starter_kit(target: Target, attributes: Mapping[str, str]) -> bytes:
    """The kit's zip; ``attributes`` are the server's engine attributes known at creation
    (the once-only ones of CreateServer and those DescribeServers shows)."""
    values = {
        "SERVER_NAME": target.server_name,
        "REGION": target.region,
        "ENDPOINT": target.endpoint,
        "API_URL": target.api_url,
        "CHEF_SERVER_URL": target.chef_url(),
        "API_TLS_NOTE": _api_tls_note(target),
    }
    files: dict[str, tuple[str, int]] = {}
    if target.engine == "ChefAutomate":
        pivotal_key = attributes.get(CHEF_PIVOTAL_KEY)
        values["PIVOTAL_KEY_NOTE"] = (
            "the pivotal user's private key, made by opscm (keep it secret; opscm has only the public key)"
            if pivotal_key
            else "not included: the server was created with your own pivotal public key; "
            "put its private key here"
        )
        files[".chef/config.rb"] = (fill(template("starter_kit", "chef-config.rb"), values), 0o644)
        if pivotal_key:
            files[".chef/pivotal.pem"] = (pivotal_key, 0o600)
        readme = "chef-README.md"
    else:
        ca_cert = attributes.get(PUPPET_CA_CERT)
        values["CA_NOTE"] = (
            "the server's Puppet CA certificate (the agents' `certs/ca.pem`)"
            if ca_cert
            else "not included yet: read `PUPPET_API_CA_CERT` from DescribeServers"
        )
        values["CA_URL"] = attributes.get(PUPPET_CA_URL, "(see DescribeServers)")
        values["CRL_URL"] = attributes.get(PUPPET_CRL_URL, "(see DescribeServers)")
        values["CA_FINGERPRINT"] = (
            f"`{target.puppet_ca_fingerprint}`"
            if target.puppet_ca_fingerprint
            else "not known yet (export the user data again once the server is HEALTHY)"
        )
        if ca_cert:
            files["ca.pem"] = (ca_cert, 0o644)
        files["puppet.conf"] = (fill(template("starter_kit", "puppet.conf"), values), 0o644)
        readme = "puppet-README.md"
    files["README.md"] = (fill(template("starter_kit", readme), values), 0o644)
    files["userdata.sh"] = (user_data_script(target), 0o755)
    return _zip(kit_folder(target), files)


def _api_tls_note(target: Target) -> str:
    if target.api_ca_fingerprint:
        return (
            f"opscm's API certificate is self-signed, SHA-256 fingerprint `{target.api_ca_fingerprint}`: "
            "`userdata.sh` carries it and talks to no server that presents another one "
            "(for your own aws CLI: `AWS_CA_BUNDLE=<that certificate>`)."
        )
    if target.api_url.startswith("https://"):
        return "opscm's API certificate is checked against the node's system CA certificates."
    return "opscm's API is served over plain HTTP: put it behind TLS (`opscm serve --tls-*`) outside a test network."


def _zip(folder: str, files: Mapping[str, tuple[str, int]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            text, mode = files[name]
            info = zipfile.ZipInfo(f"{folder}/{name}", date_time=_ZIP_TIME)
            info.external_attr = (0o100000 | mode) << 16  # a regular file with its Unix mode
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    return buffer.getvalue()
