"""opscm on its embedded default needs none of its extras: psycopg (``opscm[postgres]``) is
imported only where PostgreSQL is used. A plain ``pip install .`` once failed to start
``opscm serve`` because a module of the hot path imported it."""

import subprocess
import sys
import textwrap
from pathlib import Path

# In a fresh interpreter: psycopg cannot be imported, then the server's modules load, and a
# Chef association runs through the hot path (its lean transaction) on SQLite.
_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["psycopg"] = None  # "import psycopg" now raises ImportError
    import boto3
    import opscm.cli
    import opscm.app.serving
    from opscm.mock import OpsWorksCMMock
    from tests.support.requests import create_server_params, public_pem, rsa_key

    with OpsWorksCMMock(data_dir=sys.argv[1]) as mock:  # a file database, as opscm serve's
        client = boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        mock.attach(client)
        client.create_server(**create_server_params("plain", "ChefAutomate"))
        mock.wait_for_jobs()
        attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"},
                      {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
        token = client.associate_node(ServerName="plain", NodeName="n1", EngineAttributes=attributes)["NodeAssociationStatusToken"]
        status = client.describe_node_association_status(ServerName="plain", NodeAssociationStatusToken=token)
        print(status["NodeAssociationStatus"], "psycopg" in sys.modules and sys.modules["psycopg"] is not None)
    """
)


def test_sqlite_serves_without_psycopg(tmp_path):
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=root
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["SUCCESS", "False"]
