"""The starter kit CreateServer returns once, and the user data target of a server."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

from opscm.domain.servers import Server
from opscm.domain.starter_kits import PUPPET_CA_CERT, kit_attribute_name, starter_kit
from opscm.domain.userdata import Target

from .context import Dependencies


def user_data_target(deps: Dependencies, server: Server) -> Target:
    described = {a["Name"]: a["Value"] for a in deps.engine_for(server).describe(server)}
    return Target(
        engine=server.engine.engine,
        server_name=server.name,
        region=server.region,
        endpoint=server.endpoint,
        api_url=deps.api_url,
        chef_server_url=server.engine_data.get("chef_server_url"),
        puppet_ca_pem=described.get(PUPPET_CA_CERT),
        api_ca_pem=deps.api_ca_pem,
    )


def starter_kit_attribute(deps: Dependencies, server: Server, *attribute_lists: Iterable[Mapping[str, str]]) -> dict:
    """``{"Name": CHEF_STARTER_KIT | PUPPET_STARTER_KIT, "Value": base64 zip}`` from the engine
    attributes known at creation (the once-only ones, those DescribeServers shows)."""
    attributes = {a["Name"]: a["Value"] for attributes in attribute_lists for a in attributes}
    kit = starter_kit(user_data_target(deps, server), attributes)
    return {"Name": kit_attribute_name(server.engine.engine), "Value": base64.b64encode(kit).decode("ascii")}
