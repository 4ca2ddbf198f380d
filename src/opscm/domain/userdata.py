"""User data scripts (ExportServerEngineAttribute ``Userdata``): the rules of the inputs and
the script made from them.

The script's text lives in package data (``opscm/templates/userdata``); this module checks
every value it fills in and inserts it shell-quoted, so nothing a caller sends can become code.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources

from .associations import CHEF_DEFAULT_ORGANIZATION
from .engine_attributes import attribute_map
from .errors import ValidationFailed
from .fingerprints import certificate_fingerprints

USERDATA = "Userdata"
EXPORT_ATTRIBUTES = (USERDATA,)

RUN_LIST = "RunList"
ORGANIZATION_NAME = "OrganizationName"
NODE_ENVIRONMENT = "NodeEnvironment"
NODE_CLIENT_VERSION = "NodeClientVersion"
# The inputs the API documents; for Puppet it says they are ignored, and so they are.
DOCUMENTED_INPUTS = (RUN_LIST, ORGANIZATION_NAME, NODE_ENVIRONMENT, NODE_CLIENT_VERSION)
# opscm's own input for Puppet nodes: the agent's environment in puppet.conf.
PUPPET_NODE_ENVIRONMENT = "PUPPET_NODE_ENVIRONMENT"
INPUTS = {"ChefAutomate": DOCUMENTED_INPUTS, "Puppet": DOCUMENTED_INPUTS + (PUPPET_NODE_ENVIRONMENT,)}

_NAME = r"[A-Za-z0-9_\-.]+"
# recipe[cookbook], recipe[cookbook::recipe], recipe[cookbook::recipe@1.2.3], role[name], or a bare
# cookbook[::recipe] (Chef reads it as a recipe).
_RUN_LIST_ITEM = re.compile(
    rf"recipe\[{_NAME}(::{_NAME})?(@\d+(\.\d+){{0,2}})?\]|role\[[A-Za-z0-9_\-]+\]|{_NAME}(::{_NAME})?"
)
_CHEF_ENVIRONMENT = re.compile(r"[A-Za-z0-9_\-]+")
_CHEF_VERSION = re.compile(r"\d+\.\d+\.\d+")
_PUPPET_ENVIRONMENT = re.compile(r"[a-z0-9_]+")
_PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")


@dataclasses.dataclass(frozen=True)
class Target:
    """The server a script associates nodes with, and where opscm's API answers."""

    engine: str  # "ChefAutomate" or "Puppet"
    server_name: str
    region: str
    endpoint: str
    api_url: str
    # A Chef backend's chef_server_url; None: opscm's own https://<endpoint>/organizations/<org>.
    chef_server_url: str | None = None
    # The Puppet server's CA certificate (PUPPET_API_CA_CERT) when known: the script pins it.
    puppet_ca_pem: str | None = None
    # opscm's API certificate when it is self-signed: the script trusts it, and only it.
    api_ca_pem: str | None = None

    @property
    def puppet_ca_fingerprint(self) -> str:
        return certificate_fingerprints(self.puppet_ca_pem) if self.puppet_ca_pem else ""

    @property
    def api_ca_fingerprint(self) -> str:
        return certificate_fingerprints(self.api_ca_pem) if self.api_ca_pem else ""

    def chef_url(self, organization: str = CHEF_DEFAULT_ORGANIZATION) -> str:
        return self.chef_server_url or f"https://{self.endpoint}/organizations/{organization}"


@dataclasses.dataclass(frozen=True)
class NodeOptions:
    run_list: tuple[str, ...] = ()
    organization: str = CHEF_DEFAULT_ORGANIZATION
    chef_environment: str = ""
    chef_client_version: str = ""
    puppet_environment: str = ""


def check_export_attribute(name: str) -> None:
    if name not in EXPORT_ATTRIBUTES:
        raise ValidationFailed(
            f"ExportAttributeName '{name}' is not supported; the supported export attribute is {USERDATA}."
        )


def node_options(engine: str, attributes: Iterable[Mapping[str, str]] | None) -> NodeOptions:
    """Check ExportServerEngineAttribute's InputAttributes for a server of ``engine``."""
    values = attribute_map(attributes, allowed=INPUTS[engine])
    if engine != "ChefAutomate":
        environment = values.get(PUPPET_NODE_ENVIRONMENT, "")
        if environment and not _PUPPET_ENVIRONMENT.fullmatch(environment):
            raise ValidationFailed(
                f"{PUPPET_NODE_ENVIRONMENT} '{environment}' is not a Puppet environment name "
                "(lower case letters, digits and _)."
            )
        return NodeOptions(puppet_environment=environment)
    organization = values.get(ORGANIZATION_NAME) or CHEF_DEFAULT_ORGANIZATION
    if organization != CHEF_DEFAULT_ORGANIZATION:
        raise ValidationFailed(
            f"{ORGANIZATION_NAME} '{organization}' does not exist; this server has only '{CHEF_DEFAULT_ORGANIZATION}'."
        )
    run_list = tuple(item.strip() for item in values.get(RUN_LIST, "").split(",") if item.strip())
    for item in run_list:
        if not _RUN_LIST_ITEM.fullmatch(item):
            raise ValidationFailed(
                f"{RUN_LIST} item '{item}' is not a run list entry such as recipe[cookbook::recipe] or role[name]."
            )
    environment = values.get(NODE_ENVIRONMENT, "")
    if environment and not _CHEF_ENVIRONMENT.fullmatch(environment):
        raise ValidationFailed(
            f"{NODE_ENVIRONMENT} '{environment}' is not a Chef environment name (letters, digits, _ and -)."
        )
    version = values.get(NODE_CLIENT_VERSION, "")
    if version and not _CHEF_VERSION.fullmatch(version):
        raise ValidationFailed(
            f"{NODE_CLIENT_VERSION} '{version}' must be three numbers separated by dots, such as 13.8.5."
        )
    return NodeOptions(
        run_list=run_list, organization=organization, chef_environment=environment, chef_client_version=version
    )


def user_data_script(target: Target, options: NodeOptions = NodeOptions()) -> str:
    """The bash script a node runs to associate itself with ``target``."""
    values = {
        "SERVER_NAME": target.server_name,
        "REGION": target.region,
        "API_URL": target.api_url,
        "ENDPOINT": target.endpoint,
        "API_CA_PEM": target.api_ca_pem or "",
    }
    if target.engine == "ChefAutomate":
        first_boot: dict[str, object] = {"run_list": list(options.run_list)}
        if options.chef_environment:
            first_boot["chef_environment"] = options.chef_environment
        values.update(
            CHEF_SERVER_URL=target.chef_url(options.organization),
            CHEF_ORGANIZATION=options.organization,
            CHEF_ENVIRONMENT=options.chef_environment,
            CHEF_CLIENT_VERSION=options.chef_client_version,
            CHEF_FIRST_BOOT_JSON=json.dumps(first_boot),
        )
        engine_part = "chef.sh"
    else:
        values.update(PUPPET_ENVIRONMENT=options.puppet_environment, PUPPET_CA_FINGERPRINT=target.puppet_ca_fingerprint)
        engine_part = "puppet.sh"
    script = template("userdata", "common.sh") + template("userdata", engine_part)
    return fill(script, {name: shell_quote(value) for name, value in values.items()})


@functools.cache
def template(*path: str) -> str:
    """A template shipped in the package (read once: they never change while running)."""
    return resources.files("opscm").joinpath("templates", *path).read_text(encoding="utf-8")


def fill(text: str, values: Mapping[str, str]) -> str:
    """Replace every ``@NAME@`` of ``text``; a placeholder without a value is a bug."""

    def value(match: re.Match) -> str:
        return values[match.group(1)]

    return _PLACEHOLDER.sub(value, text)


def shell_quote(value: str) -> str:
    """One bash word holding ``value`` literally (single quotes; no expansion at all)."""
    return "'" + value.replace("'", "'\\''") + "'"
