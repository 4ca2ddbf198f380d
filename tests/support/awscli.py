"""Run the real aws CLI (v1 from PyPI) against a served opscm, as a booting node would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .requirements import require_aws_cli


def aws_executable() -> str:
    return require_aws_cli()


def cli_home(tmp_path: Path) -> Path:
    """A HOME with the opsworks-cm model installed by `opscm setup-aws-cli`."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "opscm", "setup-aws-cli"], env={**os.environ, "HOME": str(home)}, check=True, capture_output=True
    )
    return home


def node_env(home: Path, server) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        AWS_SHARED_CREDENTIALS_FILE=str(server.credentials_file),
        AWS_ENDPOINT_URL=server.url,
        AWS_CONFIG_FILE=str(home / "no-config"),
    )
    return env


def shell(script: str, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a user-data-like bash script with `aws` on the PATH."""
    env = {**env, "PATH": f"{Path(aws_executable()).parent}:{env.get('PATH', '')}"}
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
