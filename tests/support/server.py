"""Start a real ``opscm serve`` subprocess and talk to it like a user would."""

from __future__ import annotations

import collections
import configparser
import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
from botocore.config import Config

from opscm.domain.regions import OPSWORKS_CM_REGIONS

# The session server's regions: AWS's, and some that modules use to keep their counts apart.
TEST_REGIONS = (*OPSWORKS_CM_REGIONS, "eu-north-1", "ca-central-1", "ap-south-1", "sa-east-1", "af-south-1")
# The ready line, as text or as the message of a JSON line (--log-format json).
READY = re.compile(r"(?:opscm: |\"message\": \")serving on (?P<url>https?://\S+) \(credentials: (?P<credentials>.+)\)")
# The request log: "<time> INFO opscm.requests: <request id> <operation>[ <error code>] <status> <ms>ms".
REQUEST_LOGGED = re.compile(r"opscm\.requests: (?P<id>\S+) (?P<operation>\S+) (?:\S+ )?\d{3} [\d.]+ms$")


@dataclasses.dataclass
class RunningServer:
    process: subprocess.Popen
    url: str
    data_dir: Path
    credentials_file: Path
    output: list[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def ca_bundle(self) -> str | None:
        """The certificate clients trust (``--tls-self-signed``); None over plain HTTP."""
        return str(self.data_dir / "tls-cert.pem") if self.url.startswith("https://") else None

    @property
    def access_key(self) -> tuple[str, str]:
        parser = configparser.ConfigParser()
        parser.read(self.credentials_file)
        return parser["default"]["aws_access_key_id"], parser["default"]["aws_secret_access_key"]

    def client(self, region: str = "us-east-1", key: tuple[str, str] | None = None, retries: int = 0):
        key_id, secret = key or self.access_key
        return boto3.client(
            "opsworkscm",
            region_name=region,
            endpoint_url=self.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            verify=self.ca_bundle,
            # botocore reads "max_attempts" here as retries; "total_max_attempts" counts the first try.
            config=Config(retries={"total_max_attempts": retries + 1, "mode": "standard"}),
        )

    def operations_since(self, line: int, timeout: float = 10) -> collections.Counter:
        """How many times each operation was answered since output *line* (by the request log).

        A request of our own marks the end: once its line is logged, every earlier one is."""
        marker = self.client().describe_account_attributes()["ResponseMetadata"]["RequestId"]
        deadline = time.monotonic() + timeout
        while True:
            logged = [match for text in self.output[line:] if (match := REQUEST_LOGGED.search(text.rstrip()))]
            if any(match["id"] == marker for match in logged):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"request {marker} was not logged:\n" + "".join(self.output[line:]))
            time.sleep(0.05)
        return collections.Counter(match["operation"] for match in logged if match["id"] != marker)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


def start_server(data_dir: Path, *args: str, timeout: float = 60) -> RunningServer:
    """``opscm serve`` on a free port; one worker unless *args* say otherwise (throttling
    buckets and request counts of the tests are per process)."""
    workers = () if "--workers" in args else ("--workers", "1")
    command = [sys.executable, "-m", "opscm", "serve", "--port", "0", "--data-dir", str(data_dir), *workers, *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    output: list[str] = []
    ready = threading.Event()
    found: dict[str, str] = {}

    def pump():
        # Keep draining the pipe for the server's whole life so it never blocks on a full pipe.
        for line in process.stdout:
            output.append(line)
            match = READY.search(line)
            if match and not ready.is_set():
                found.update(match.groupdict())
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout) or not found:
        process.kill()
        raise RuntimeError("opscm serve did not start:\n" + "".join(output))
    return RunningServer(process, found["url"], data_dir, Path(found["credentials"]), output)


def wait_for_status(client, name: str, wanted: str = "HEALTHY", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        server = client.describe_servers(ServerName=name)["Servers"][0]
        if server["Status"] == wanted:
            return server
        if time.monotonic() > deadline:
            raise AssertionError(f"server {name} is {server['Status']}, not {wanted}")
        time.sleep(0.1)


def wait_until_gone(client, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.describe_servers(ServerName=name)
        except client.exceptions.ResourceNotFoundException:
            return
        time.sleep(0.1)
    raise AssertionError(f"server {name} still exists")
