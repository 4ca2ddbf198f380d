"""ExportServerEngineAttribute: the ``Userdata`` script nodes run to associate themselves."""

from __future__ import annotations

import base64

from opscm.domain.servers import EXPORT_REFUSED_STATES
from opscm.domain.userdata import USERDATA, check_export_attribute, node_options, user_data_script

from .context import Caller, Dependencies
from .servers import require_server
from .starter_kits import user_data_target


def export_server_engine_attribute(deps: Dependencies, caller: Caller, params: dict) -> dict:
    check_export_attribute(params["ExportAttributeName"])
    with deps.uow(read_only=True) as uow:
        server = require_server(uow, caller, params["ServerName"])
    server.refuse_status(*EXPORT_REFUSED_STATES, action="ExportServerEngineAttribute")
    options = node_options(server.engine.engine, params.get("InputAttributes"))
    script = user_data_script(user_data_target(deps, server), options)
    return {
        "ServerName": server.name,
        "EngineAttribute": {"Name": USERDATA, "Value": base64.b64encode(script.encode("utf-8")).decode("ascii")},
    }
