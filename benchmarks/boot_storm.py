"""Boot storm: N simulated nodes associate with a real `opscm serve` over HTTP with real SigV4.

Each node runs AssociateNode, then DescribeNodeAssociationStatus until the status is final,
as AWS's user data does. Puppet nodes send pre-made RSA-2048 CSRs (made before timing);
Chef nodes send RSA-2048 public keys. Levels of concurrent clients run one after the other
against the same servers; every figure of a run is measured in that run.

    .venv/bin/python benchmarks/boot_storm.py                      # 2,000 nodes per engine, 1/8/64 clients, SQLite
    .venv/bin/python benchmarks/boot_storm.py --stores sqlite,postgresql
    .venv/bin/python benchmarks/boot_storm.py --stores postgresql --workers 1 --replicas 1,2 --rounds 3 --clients 8

Printed per store, engine and level: associations/s, AssociateNode latency p50/p95/p99, whole
association p99, AssociateNode's p99 over its p50, errors, the server's CPU milliseconds per association (/proc, every process
of every replica; in user space and in the kernel), the load generator's CPU milliseconds per
association (it shares the cores), PostgreSQL's own CPU milliseconds per association (every
postgres process of the machine), how busy the machine's cores were (everything on it: opscm,
the load generator, PostgreSQL), the connections the clients made (one each, and one more each
time a worker holding more than its share asked a client to reconnect), peak RSS per server
process, and (Puppet) the machine's signing ceiling:
opscm's own CSR check + signing on all cores, without HTTP or database, measured in this run,
with the server's CPU per association beyond one check + signature (as the ceiling made them).
With several replica counts (``--replicas 1,2``), each level runs against the first N replicas
of the same set in turn, ``--rounds`` times interleaved, and each round's rate is set beside the
first count's rate of the same round: a ratio measured in one run, on a machine whose speed
drifts from minute to minute.
A script, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from opscm.pki import CaSigner, check_csr, create_ca  # noqa: E402
from opscm.protocol.json11 import HttpRequest  # noqa: E402
from opscm.protocol.sigv4 import SigV4Authorization, canonical_request, signature  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.requests import create_server_params  # noqa: E402
from tests.support.server import start_server, wait_for_status  # noqa: E402

TARGET = "OpsWorksCM_V2016_11_01"
SIGNED = ("content-type", "host", "x-amz-date", "x-amz-target")
KEYS = 16  # node keys reused across CSRs: the server's work per CSR is the same


# ---- the nodes' requests (made before timing) -----------------------------------------------


def _keys(count: int) -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(count)]


def _csr(name: str, key: rsa.RSAPrivateKey) -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def node_requests(engine: str, server: str, names: list[str], keys) -> list[dict]:
    requests = []
    for i, name in enumerate(names):
        key = keys[i % len(keys)]
        if engine == "Puppet":
            attributes = [{"Name": "PUPPET_NODE_CSR", "Value": _csr(name, key)}]
        else:
            public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            attributes = [
                {"Name": "CHEF_ORGANIZATION", "Value": "default"},
                {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public.decode()},
            ]
        requests.append({"ServerName": server, "NodeName": name, "EngineAttributes": attributes})
    return requests


# ---- a lean client: HTTP/1.1 keep-alive on asyncio streams, SigV4 with opscm's own functions ---


class Signer:
    def __init__(self, key_id: str, secret: str, region: str, host: str):
        self.key_id, self.secret, self.region, self.host = key_id, secret, region, host

    def headers(self, operation: str, body: bytes) -> dict[str, str]:
        now = datetime.now(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {
            "content-type": "application/x-amz-json-1.1",
            "host": self.host,
            "x-amz-date": amz_date,
            "x-amz-target": f"{TARGET}.{operation}",
        }
        auth = SigV4Authorization(self.key_id, amz_date[:8], self.region, "opsworks-cm", SIGNED, "")
        request = HttpRequest("POST", "/", "", headers, body)
        canonical = canonical_request(request, SIGNED, hashlib.sha256(body).hexdigest())
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.key_id}/{auth.scope}, SignedHeaders={';'.join(SIGNED)}, "
            f"Signature={signature(self.secret, auth, amz_date, canonical)}"
        )
        return headers


class Connection:
    opened = 0  # connections this load-generator process made (a server may ask for new ones)

    def __init__(self, url: str, signer: Signer):
        parts = urlsplit(url)
        self.address = (parts.hostname, parts.port)
        self.signer = signer
        self.reader = self.writer = None

    async def call(self, operation: str, params: dict) -> tuple[int, dict]:
        body = json.dumps(params).encode()
        headers = self.signer.headers(operation, body)
        head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"content-length: {len(body)}\r\n\r\n"
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(*self.address)
            Connection.opened += 1
        self.writer.write(head.encode() + body)
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length, close = 0, False
        for line in lines:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = value.strip().lower() == "close"
        data = await self.reader.readexactly(length)
        if close:  # as HTTP clients do: the next request on a new connection
            self.writer.close()
            self.reader = self.writer = None
        return int(status_line.split()[1]), json.loads(data) if data else {}


async def _clients(urls, signer_args, requests, concurrency, results):
    queue = list(reversed(requests))

    async def client(index: int) -> None:
        url = urls[index % len(urls)]
        connection = Connection(url, Signer(*signer_args, host=urlsplit(url).netloc))
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            status, answer = await connection.call("AssociateNode", request)
            associated = time.perf_counter()
            if status != 200:
                results.append(("error", answer.get("__type", status), 0, 0))
                continue
            describe = {"ServerName": request["ServerName"], "NodeAssociationStatusToken": answer["NodeAssociationStatusToken"]}
            while True:
                status, answer = await connection.call("DescribeNodeAssociationStatus", describe)
                if status != 200 or answer["NodeAssociationStatus"] != "IN_PROGRESS":
                    break
                await asyncio.sleep(0.05)
            done = time.perf_counter()
            final = answer.get("NodeAssociationStatus") if status == 200 else answer.get("__type", status)
            kind = "ok" if final == "SUCCESS" else "error"
            results.append((kind, final, associated - started, done - started))

    await asyncio.gather(*(client(i) for i in range(concurrency)))


def _client_process(urls, signer_args, requests, concurrency, pipe):
    results: list = []
    asyncio.run(_clients(urls, signer_args, requests, concurrency, results))
    pipe.send((results, time.process_time(), Connection.opened))
    pipe.close()


def drive(urls, signer_args, requests, clients: int, processes: int):
    """Run ``clients`` concurrent clients, spread over ``processes`` load-generator processes:
    (results, seconds, the load generator's CPU seconds, connections made)."""
    processes = max(1, min(processes, clients))
    context = multiprocessing.get_context("fork")
    workers = []
    for p in range(processes):
        share = clients // processes + (1 if p < clients % processes else 0)
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_client_process, args=(urls, signer_args, requests[p::processes], share, sender))
        workers.append((process, receiver))
    started = time.perf_counter()
    for process, _ in workers:
        process.start()
    results, cpu, opened = [], 0.0, 0
    for process, receiver in workers:
        some, seconds, connections = receiver.recv()
        results += some
        cpu += seconds
        opened += connections
        process.join()
    return results, time.perf_counter() - started, cpu, opened


# ---- the server's side: CPU and memory of every process --------------------------------------


def _tree(pid: int) -> list[int]:
    pids, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == parent:
                    pids.append(int(entry.name))
                    frontier.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> dict[int, tuple[float, float]]:
    """CPU seconds of each process: (in user space, in the kernel for it: syscalls, fsync, TCP)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tick = os.sysconf("SC_CLK_TCK")
        seconds[pid] = (int(fields[11]) / tick, int(fields[12]) / tick)  # utime, stime
    return seconds


def postgres_pids() -> list[int]:
    """PostgreSQL's processes on this machine (its backends serve opscm's connections)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def machine_ticks() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine since boot (/proc/stat): opscm, the load
    generator, PostgreSQL and everything else."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---- the ceiling: CSR check + signing on every core, nothing else ----------------------------


def _sign_for(seconds: float, ca_key_bits: int, csrs: list[tuple[str, str]], pipe) -> None:
    material = create_ca("ceiling", now=datetime.now(UTC), key_bits=ca_key_bits)
    signer = CaSigner(material.key_pem, material.cert_pem)
    count, serial, deadline = 0, 2, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        name, pem = csrs[count % len(csrs)]
        csr = check_csr(pem, name)
        signer.sign_node(csr, certname=name, serial=serial, now=datetime.now(UTC), vetted=True)
        count, serial = count + 1, serial + 1
    pipe.send(count)


def signing_ceiling(ca_key_bits: int, csrs, seconds: float = 3.0) -> float:
    context = multiprocessing.get_context("fork")
    cores = os.cpu_count() or 1
    pipes, processes = [], []
    for _ in range(cores):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_sign_for, args=(seconds, ca_key_bits, csrs, sender))
        process.start()
        pipes.append(receiver)
        processes.append(process)
    total = sum(pipe.recv() for pipe in pipes)
    for process in processes:
        process.join()
    return total / seconds


# ---- a run -----------------------------------------------------------------------------------


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def serve(store: str, root: Path, args, database_url: str | None):
    extra = ["--ca-key-bits", str(args.ca_key_bits), "--schedule-interval", "0", "--health-interval", "0",
             "--server-limit", "50", "--log-level", "warning"]
    # Always said: the test helper that starts servers would otherwise ask for one worker.
    extra += ["--workers", str(args.workers or len(os.sched_getaffinity(0)))]
    if database_url:
        extra += ["--database-url", database_url]
    servers = []
    for i in range(max(args.replicas) if database_url else 1):
        servers.append(start_server(root / f"replica{i}", *extra))
    return servers


def run_store(store: str, args, keys) -> None:
    with tempfile.TemporaryDirectory(prefix="opscm-storm-") as tmp:
        root = Path(tmp)
        if store == "postgresql":
            os.environ["OPSCM_MASTER_KEY"] = base64.b64encode(os.urandom(32)).decode()
            with fresh_database() as url:
                _measure(store, args, keys, serve(store, root, args, url))
            del os.environ["OPSCM_MASTER_KEY"]
        else:
            _measure(store, args, keys, serve(store, root, args, None))


def _measure(store: str, args, keys, servers) -> None:
    try:
        admin = servers[0].client()
        key_id, secret = servers[0].access_key
        every_pid = [pid for s in servers for pid in _tree(s.process.pid)]
        counts = args.replicas if store == "postgresql" else [1]
        for engine in args.engines:
            name = f"storm-{engine.lower()[:5]}"
            admin.create_server(**create_server_params(name, engine))
            wait_for_status(admin, name)
            ceiling = None
            if engine == "Puppet":
                sample = [(f"ceiling-{i}", _csr(f"ceiling-{i}", keys[i % len(keys)])) for i in range(64)]
                ceiling = signing_ceiling(args.ca_key_bits, sample)
            rates: dict[tuple[int, int], list[float]] = {}
            levels = [(c, r, n) for c in args.clients for r in range(args.rounds) for n in counts]
            for clients, round_, replicas in levels:
                names = [f"n{clients}-{replicas}-{round_}-{i}" for i in range(args.nodes)]
                requests = node_requests(engine, name, names, keys)
                urls = [s.url for s in servers[:replicas]]
                # The replicas this level drives (an idle one's few ticks are left out).
                pids = [pid for s in servers[:replicas] for pid in _tree(s.process.pid)]
                database_before = cpu_seconds(postgres_pids()) if store == "postgresql" else {}
                cpu_before, machine_before = cpu_seconds(pids), machine_ticks()
                results, wall, client_cpu, opened = drive(urls, (key_id, secret, "us-east-1"), requests, clients, args.client_processes)
                cpu_after = cpu_seconds(pids)
                database_after = cpu_seconds(postgres_pids()) if store == "postgresql" else {}
                # New backends (opscm's connections made during the level) count from 0.
                database_cpu = sum(sum(after) - sum(database_before.get(pid, (0, 0))) for pid, after in database_after.items())
                user = {pid: cpu_after[pid][0] - cpu_before.get(pid, (0, 0))[0] for pid in cpu_after}
                system = {pid: cpu_after[pid][1] - cpu_before.get(pid, (0, 0))[1] for pid in cpu_after}
                per_process = {pid: user[pid] + system[pid] for pid in cpu_after}
                cpu = sum(per_process.values())
                per_node = 1000 / max(1, len(results))
                machine_after = machine_ticks()
                busy = (machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1])
                ok = [r for r in results if r[0] == "ok"]
                errors = len(results) - len(ok)
                associate = [r[2] * 1000 for r in ok]
                whole = [r[3] * 1000 for r in ok]
                rate = len(ok) / wall
                rates.setdefault((clients, replicas), []).append(rate)
                p50, p99 = _percentile(associate, .5), _percentile(associate, .99)
                shown = f"replicas={replicas} " if len(counts) > 1 else ""
                line = (
                    f"{store:10} {engine:12} {shown}clients={clients:3} nodes={len(results):5} "
                    f"assoc/s={rate:8.1f} AssociateNode ms p50={p50:6.1f} "
                    f"p95={_percentile(associate, .95):6.1f} p99={p99:6.1f} "
                    f"association p99={_percentile(whole, .99):6.1f} "
                    f"(AssociateNode p99/p50={p99 / max(p50, 1e-9):3.1f}x) errors={errors} "
                    f"server CPU ms/assoc={cpu * per_node:5.2f} (user {sum(user.values()) * per_node:.2f}"
                    f" + system {sum(system.values()) * per_node:.2f}) load generator CPU ms/assoc={client_cpu * per_node:4.2f}"
                    f" machine busy={busy * 100:3.0f}% connections={opened}"
                )
                if store == "postgresql":
                    line += f" PostgreSQL CPU ms/assoc={database_cpu * per_node:4.2f}"
                if ceiling:
                    # One check + signature's CPU on a core with every core busy, as the ceiling ran.
                    signing_ms = 1000 * (os.cpu_count() or 1) / ceiling
                    line += (
                        f" ceiling={ceiling:7.1f}/s ratio={rate / ceiling:4.2f}"
                        f" server CPU beyond check+signature ({signing_ms:.2f} ms)={cpu * per_node - signing_ms:5.2f} ms"
                    )
                # How the work fell on the processes (a worker that got few connections shows here).
                line += " CPU s per process=" + "/".join(f"{per_process[pid]:.1f}" for pid in sorted(per_process))
                print(line, flush=True)
                if errors:
                    print("   errors:", sorted({str(r[1]) for r in results if r[0] != "ok"})[:5], flush=True)
            _print_replica_ratios(store, engine, args.clients, counts, rates)
        rss = ", ".join(f"{pid}:{peak_rss_mb(pid):.0f}" for pid in every_pid)
        print(f"{store:10} peak RSS MB per server process: {rss}", flush=True)
    finally:
        for server in servers:
            server.stop()


def _print_replica_ratios(store: str, engine: str, levels, counts, rates) -> None:
    """Each count's rate over the first count's, round by round (the rounds interleave them)."""
    for clients in levels:
        base = rates[(clients, counts[0])]
        for replicas in counts[1:]:
            ratios = [rate / first for rate, first in zip(rates[(clients, replicas)], base)]
            print(
                f"{store:10} {engine:12} clients={clients:3} {replicas} replicas against {counts[0]}: "
                f"median {statistics.median(ratios):.2f}x (rounds: {', '.join(f'{r:.2f}' for r in ratios)})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2000, help="nodes per engine and level (default 2000)")
    parser.add_argument("--clients", default="1,8,64", help="concurrent client levels (default 1,8,64)")
    parser.add_argument("--engines", default="Puppet,ChefAutomate", help="engines (default Puppet,ChefAutomate)")
    parser.add_argument("--stores", default="sqlite", help="sqlite, postgresql or both (default sqlite)")
    parser.add_argument("--workers", type=int, help="opscm serve --workers (default: opscm's own, the number of CPUs)")
    parser.add_argument(
        "--replicas", default="1", help="opscm serve replicas on one PostgreSQL; several counts (1,2) are compared (default 1)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each level, interleaved across replica counts (default 1)")
    parser.add_argument("--ca-key-bits", type=int, default=4096, help="Puppet CA size (default 4096)")
    parser.add_argument("--client-processes", type=int, default=2, help="load generator processes (default 2)")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    args.engines = [e.strip() for e in args.engines.split(",")]
    args.replicas = [int(r) for r in args.replicas.split(",")]
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores; command: {' '.join(sys.argv)}", flush=True)
    keys = _keys(KEYS)
    for store in args.stores.split(","):
        run_store(store.strip(), args, keys)


if __name__ == "__main__":
    main()
