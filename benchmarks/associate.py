"""Measure node association through a real `opscm serve`: CreateServer time, AssociateNode
latency and throughput for Puppet (CSR signing) and Chef (key registration).

    .venv/bin/python benchmarks/associate.py [--nodes 200] [--threads 8] [--ca-key-bits 4096]

Prints figures; asserts nothing. CSRs and keys are made before timing starts.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key  # noqa: E402
from tests.support.server import start_server, wait_for_status  # noqa: E402


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def run(client, server, requests, threads):
    def one(request):
        node, attributes = request
        (response, seconds) = timed(
            lambda: client.associate_node(ServerName=server, NodeName=node, EngineAttributes=attributes)
        )
        status = client.describe_node_association_status(
            ServerName=server, NodeAssociationStatusToken=response["NodeAssociationStatusToken"]
        )
        assert status["NodeAssociationStatus"] == "SUCCESS"
        return seconds

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        started = time.perf_counter()
        latencies = sorted(pool.map(one, requests))
        wall = time.perf_counter() - started
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(
        f"  {len(latencies)} associations, {threads} threads: {len(latencies) / wall:.1f}/s (with a describe each), "
        f"latency p50 {p(0.5):.1f} ms, p95 {p(0.95):.1f} ms, max {latencies[-1] * 1000:.1f} ms, "
        f"mean {statistics.mean(latencies) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--ca-key-bits", default="4096")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        served = start_server(Path(data_dir), "--ca-key-bits", args.ca_key_bits, "--log-level", "warning")
        try:
            client = served.client(retries=2)
            for engine in ("Puppet", "ChefAutomate"):
                (_, seconds) = timed(lambda: client.create_server(**create_server_params(f"bench-{engine.lower()}", engine)))
                wait_for_status(client, f"bench-{engine.lower()}")
                made = f"a {args.ca_key_bits}-bit CA" if engine == "Puppet" else "a 2048-bit pivotal key"
                print(f"CreateServer {engine} ({made}): {seconds * 1000:.0f} ms")
            csrs = [(f"node{i}", [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(f"node{i}")}]) for i in range(args.nodes)]
            keys = [
                (
                    f"node{i}",
                    [
                        {"Name": "CHEF_ORGANIZATION", "Value": "default"},
                        {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())},
                    ],
                )
                for i in range(args.nodes)
            ]
            print("Puppet AssociateNode (CSR checked and signed):")
            run(client, "bench-puppet", csrs, args.threads)
            print("Chef AssociateNode (key checked and registered):")
            run(client, "bench-chefautomate", keys, args.threads)
        finally:
            served.stop()


if __name__ == "__main__":
    main()
