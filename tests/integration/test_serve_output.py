"""What a real ``opscm serve`` prints: at the default level only opscm's own lines (no Alembic
notes, no uvicorn chatter); with ``--log-format json`` one JSON object per line."""

import json
import re
import time
from datetime import datetime

import pytest

from tests.support.server import start_server

# opscm's announcements, or a log record of an opscm logger.
OPSCM_LINE = re.compile(r"^(opscm: |\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) opscm(\.\w+)*: )")


def _serve_a_while(tmp_path, *args: str) -> list[str]:
    """Everything a two-worker opscm printed (stdout and stderr) from start to a clean stop,
    with an answered request and a refused one in between."""
    server = start_server(tmp_path, "--workers", "2", "--ca-key-bits", "2048", *args)
    try:
        client = server.client()
        client.describe_servers()
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.describe_servers(ServerName="nowhere")
    finally:
        assert server.stop() == 0
    time.sleep(0.5)  # the last lines still in the pipe
    return [line.rstrip("\n") for line in server.output]


def test_the_default_level_prints_only_opscms_own_lines(tmp_path):
    lines = _serve_a_while(tmp_path)
    assert [line for line in lines if not OPSCM_LINE.match(line)] == []
    assert sum(line.startswith("opscm: serving on ") for line in lines) == 1
    assert any(" opscm.requests: " in line and " DescribeServers ResourceNotFoundException 400 " in line for line in lines)


def test_json_format_is_one_object_per_line(tmp_path):
    lines = _serve_a_while(tmp_path, "--log-format", "json")
    entries = [json.loads(line) for line in lines]
    for entry in entries:
        assert {"time", "level", "logger", "message", "pid"} <= entry.keys(), entry
        assert datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).tzinfo is not None
        assert entry["logger"].startswith("opscm"), entry
    ready = [e for e in entries if e["message"].startswith("serving on http://")]
    assert len(ready) == 1 and ready[0]["logger"] == "opscm.console" and ready[0]["level"] == "INFO"

    requests = {e["outcome"]: e for e in entries if e["logger"] == "opscm.requests" and e["operation"] == "DescribeServers"}
    assert requests["success"]["status"] == 200
    refused = requests["ResourceNotFoundException"]
    assert refused["status"] == 400 and refused["duration_ms"] >= 0
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", refused["request_id"])
    assert refused["message"].startswith(refused["request_id"] + " DescribeServers ResourceNotFoundException 400 ")
