"""The in-process mock's cost per call, over the floor of any before-send-hook mock.

The floor: a before-send hook that returns a fixed answer (botocore still builds, signs and
parses the request and the answer); the fixed answers are the mock's own, recorded once, so
both parse the same bytes. The mock's figure is what it adds on top, for describe_servers and
for a Chef associate_node, measured in one run (interleaved rounds).

    .venv/bin/python benchmarks/mock_overhead.py [--calls 2000] [--rounds 5]

A script, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
from botocore.awsrequest import AWSResponse  # noqa: E402

from opscm.mock import OpsWorksCMMock  # noqa: E402
from tests.support.requests import create_server_params, public_pem, rsa_key  # noqa: E402


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_kwargs):
        yield self.data


def _client():
    return boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _fixed(body: bytes):
    def answer(request, **_kwargs):
        return AWSResponse(request.url, 200, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))

    return answer


def _recorder(client) -> dict[str, bytes]:
    """The mock's answers, by operation, as they go by."""
    recorded: dict[str, bytes] = {}

    def keep(http_response, model, **_kwargs):
        recorded[model.name] = http_response.content

    client.meta.events.register("after-call.opsworkscm", keep)
    return recorded


def _per_call(call, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        call(i)
    return (time.perf_counter() - started) / count * 1000


@contextlib.contextmanager
def calls() -> Iterator[dict[str, Callable[[int], object]]]:
    """The four calls compared, by name (each takes the call's number): the mock's
    describe_servers and Chef associate_node (a new node each time), and the floor's, a
    fixed-answer hook returning what the mock answered them."""
    keys = [public_pem(rsa_key()) for _ in range(8)]

    def chef(i: int) -> list[dict[str, str]]:
        return [
            {"Name": "CHEF_ORGANIZATION", "Value": "default"},
            {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": keys[i % len(keys)]},
        ]

    with OpsWorksCMMock() as mock:
        client = _client()
        mock.attach(client)
        client.create_server(**create_server_params("bench", "ChefAutomate"))
        mock.wait_for_jobs()
        recorded = _recorder(client)
        client.describe_servers()
        client.associate_node(ServerName="bench", NodeName="recorded", EngineAttributes=chef(0))
        floor_describe, floor_associate = _client(), _client()
        floor_describe.meta.events.register("before-send.opsworkscm", _fixed(recorded["DescribeServers"]))
        floor_associate.meta.events.register("before-send.opsworkscm", _fixed(recorded["AssociateNode"]))
        node = iter(range(10**9))
        yield {
            "floor describe": lambda i: floor_describe.describe_servers(),
            "mock describe": lambda i: client.describe_servers(),
            "floor associate": lambda i: floor_associate.associate_node(ServerName="bench", NodeName="n", EngineAttributes=chef(i)),
            "mock associate": lambda i: client.associate_node(
                ServerName="bench", NodeName=f"n{next(node)}", EngineAttributes=chef(i)
            ),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with calls() as compared:
        figures: dict[str, list[float]] = {name: [] for name in compared}
        for _ in range(args.rounds):
            for name, call in compared.items():
                figures[name].append(_per_call(call, args.calls))
    median = {name: statistics.median(values) for name, values in figures.items()}
    print(f"# {args.rounds} interleaved rounds of {args.calls} calls; medians in ms per call")
    for operation in ("describe", "associate"):
        floor, mocked = median[f"floor {operation}"], median[f"mock {operation}"]
        print(f"{operation:10} floor (fixed answer) {floor:.3f}  mock {mocked:.3f}  mock adds {mocked - floor:.3f}")


if __name__ == "__main__":
    main()
