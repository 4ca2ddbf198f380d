"""How long a backup and a maintenance keep a busy server out of HEALTHY, and what a big data
dir costs a restart: a real `opscm serve` with N associated nodes of each engine.

    .venv/bin/python benchmarks/windows.py [--nodes 10000] [--ca-key-bits 4096]

Prints: the time each of CreateBackup and StartMaintenance keeps the Puppet server out of
HEALTHY (the window in which AssociateNode is refused), the backup's size, the server's peak
RSS per process after the associations, and the time from start to ready on that data dir
(opscm's modules compiled first, as an install leaves them).
A script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import opscm  # noqa: E402
from benchmarks.boot_storm import _keys, _tree, drive, node_requests, peak_rss_mb  # noqa: E402
from tests.support.requests import create_server_params  # noqa: E402
from tests.support.server import start_server, wait_for_status  # noqa: E402


def out_of_healthy(client, name: str, start) -> float:
    """Seconds from the request that leaves HEALTHY until the server is HEALTHY again."""
    started = time.perf_counter()
    start()
    while client.describe_servers(ServerName=name)["Servers"][0]["Status"] != "HEALTHY":
        time.sleep(0.01)
    return time.perf_counter() - started


def _storm_then_windows(server, args, keys) -> None:
    """Associations of each engine, then a backup and a maintenance of the Puppet server."""
    client = server.client()
    key = (*server.access_key, "us-east-1")
    for engine, name in (("Puppet", "busy-puppet"), ("ChefAutomate", "busy-chef")):
        client.create_server(**create_server_params(name, engine))
        wait_for_status(client, name)
        started = time.perf_counter()
        results, *_ = drive([server.url], key, node_requests(engine, name, [f"n{i}" for i in range(args.nodes)], keys), 16, 2)
        failed = sum(r[0] != "ok" for r in results)
        print(f"{engine:12} {args.nodes} associations in {time.perf_counter() - started:.1f} s, {failed} failed", flush=True)
    rss = ", ".join(f"{pid}:{peak_rss_mb(pid):.0f}" for pid in _tree(server.process.pid))
    print(f"peak RSS MB per server process after {args.nodes} associations of each engine: {rss}", flush=True)
    for label, start in (
        ("CreateBackup", lambda: client.create_backup(ServerName="busy-puppet")),
        ("StartMaintenance", lambda: client.start_maintenance(ServerName="busy-puppet")),
    ):
        seconds = out_of_healthy(client, "busy-puppet", start)
        print(f"{label:16} kept the Puppet server with {args.nodes} certificates out of HEALTHY for {seconds * 1000:.0f} ms", flush=True)
    # The server is HEALTHY again before its backup's archive is written: wait for the backup.
    deadline = time.monotonic() + 120
    while (backup := client.describe_backups(ServerName="busy-puppet")["Backups"][0])["Status"] == "IN_PROGRESS":
        if time.monotonic() > deadline:
            raise TimeoutError("the backup is still IN_PROGRESS")
        time.sleep(0.1)
    print(f"backup {backup['Status']}, {backup.get('S3DataSize', 0) / 1e6:.1f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=10000)
    parser.add_argument("--ca-key-bits", type=int, default=4096)
    args = parser.parse_args()
    keys = _keys(16)
    with tempfile.TemporaryDirectory(prefix="opscm-windows-") as tmp:
        data_dir = Path(tmp) / "data"
        workers = str(len(os.sched_getaffinity(0)))  # opscm's default (the test helper would ask for one)
        options = ("--ca-key-bits", str(args.ca_key_bits), "--schedule-interval", "0", "--health-interval", "0",
                   "--log-level", "warning", "--workers", workers)
        server = start_server(data_dir, *options)
        try:
            _storm_then_windows(server, args, keys)
        finally:
            server.stop()  # also when a step fails: no server left running
        # As `pip install .` leaves opscm: compiled. An editable install under PYTHONDONTWRITEBYTECODE
        # would compile every module again at each start (about 0.2 s here).
        compileall.compile_dir(Path(opscm.__file__).parent, quiet=1)
        started = time.perf_counter()
        again = start_server(data_dir, *options)
        print(f"start to ready on that data dir: {time.perf_counter() - started:.2f} s (process start included)", flush=True)
        again.stop()


if __name__ == "__main__":
    main()
