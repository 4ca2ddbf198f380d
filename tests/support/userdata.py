"""The exported user data script, run in a sandbox as a node would (temporary directories, the
real aws CLI, no package installs)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

from tests.support.awscli import aws_executable, node_env


def export_userdata(client, server: str, **inputs) -> str:
    attributes = [{"Name": name, "Value": value} for name, value in inputs.items()]
    response = client.export_server_engine_attribute(
        ExportAttributeName="Userdata", ServerName=server, InputAttributes=attributes
    )
    assert response["ServerName"] == server
    assert response["EngineAttribute"]["Name"] == "Userdata"
    return base64.b64decode(response["EngineAttribute"]["Value"], validate=True).decode()


def run_script(script: str, env: dict, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    path = cwd / "userdata.sh"
    path.write_text(script)
    return subprocess.run(["bash", str(path)], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def sandbox_env(home: Path, opscm, **variables: str) -> dict:
    env = node_env(home, opscm)
    env.pop("AWS_ENDPOINT_URL")  # the script brings opscm's URL itself
    env["PATH"] = f"{Path(aws_executable()).parent}:{env['PATH']}"
    env.update(OPSCM_SKIP_INSTALL="1", OPSCM_FIRST_RUN="0", **variables)
    return env
