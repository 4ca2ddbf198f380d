"""boto3 clients wired to an in-process OpsWorksCMMock."""

from __future__ import annotations

import boto3


def mock_client(mock, region: str = "us-east-1"):
    client = boto3.client(
        "opsworkscm", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    mock.attach(client)
    return client


def set_server_status(mock, name: str, status: str) -> None:
    """Put a mock's server in a state no API call leaves it in (its database is in memory)."""
    with mock.app.database.begin() as connection:
        connection.exec_driver_sql("update servers set status = ? where name = ?", (status, name))
