"""boto3 clients wired to an in-process OpsWorksCMMock."""

from __future__ import annotations

import boto3


def mock_client(mock, region: str = "us-east-1"):
    client = boto3.client(
        "opsworkscm", region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    mock.attach(client)
    return client
