"""How long the web console takes to answer for a server with 10,000 nodes.

An Application in-process (SQLite in a temporary data dir, the ASGI app driven by Starlette's
test client: no socket), one Puppet server whose node claims and certificate records are
written straight to the store, then each page fetched ``--rounds`` times.

    .venv/bin/python benchmarks/console_page.py [--nodes 10000] [--rounds 20]

A script, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opscm.app.credentials import add_key  # noqa: E402
from opscm.service.context import Caller  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402
from tests.support.console import console_app, healthy_server, node_name, seed_puppet_nodes, sign_in  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    clock = FakeClock()
    caller = Caller("123456789012", "us-east-1")
    with tempfile.TemporaryDirectory() as data_dir, console_app(Path(data_dir), clock) as (app, http):
        healthy_server(app, caller, "fleet")
        with app.deps.uow(read_only=True) as uow:
            server_id = uow.servers.get(caller.account_id, caller.region, "fleet").id
        started = time.perf_counter()
        seed_puppet_nodes(app.deps.uow, server_id, args.nodes, clock.now())
        print(f"seeded {args.nodes} nodes with certificates in {time.perf_counter() - started:.1f} s")
        key = add_key(app.deps.uow, app.secret_box, clock.now(), account=caller.account_id)
        assert sign_in(http, key.access_key_id, key.secret_access_key).status_code == 303
        base = "/console/servers/us-east-1/fleet"
        pages = {
            "servers (node count)": "/console",
            "server, first page (50)": base,
            "server, middle page (50)": f"{base}?after={node_name(args.nodes // 2)}",
            "server, last page (200)": f"{base}?size=200&before={node_name(args.nodes - 1)}z",
            "server, name search": f"{base}?q=node-0999",
            "find a node (all servers)": "/console/search?q=node-0999",
            "expiring certificates": "/console/certificates",
        }
        for label, path in pages.items():
            times = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                answer = http.get(path)
                times.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, (path, answer.status_code)
            print(f"{label:28} median {statistics.median(times):6.1f} ms  max {max(times):6.1f} ms  ({len(answer.content)} bytes)")


if __name__ == "__main__":
    main()
