"""``/metrics`` of a real ``opscm serve``: counts summed over two worker processes (requests spread
over both through several connections), a dead worker's counts kept and its live share dropped,
the store's figures (servers by status, jobs, certificate expiry, CRL age), no node name anywhere;
``--metrics off`` and ``--metrics-port``."""

import math
import os
import re
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from opscm.app.composition import Application, Settings
from opscm.app.metrics import LATENCY_BUCKETS
from tests.support.in_process import call
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key
from tests.support.server import start_server, wait_for_status
from tests.support.waiting import wait_for

WORKER = re.compile(r"opscm\.serving: worker \d+ of \d+ serving as pid (?P<pid>\d+)")
NODE_CERT_SECONDS = 5 * 365 * 86400  # the built-in CA's node certificates


def _scrape(url: str) -> tuple[str, dict]:
    answer = httpx.get(f"{url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain"), answer
    return answer.text, _samples(answer.text)


def _samples(text: str) -> dict:
    """Each sample's value by its name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _associations_answered_by(shared: Path, pid: int) -> float:
    """AssociateNode requests one worker answered, from its own file (prometheus-client's layout)."""
    own = shared / f"counter_{pid}.db"
    if not own.exists():
        return 0.0
    return sum(
        sample.value
        for family in MultiProcessCollector.merge([str(own)], accumulate=False)
        for sample in family.samples
        if sample.name == "opscm_requests_total" and sample.labels.get("operation") == "AssociateNode"
    )


def test_counts_are_summed_over_two_workers(tmp_path, monkeypatch):
    shared = tmp_path / "metrics"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))  # where the workers' files can be read
    server = start_server(tmp_path / "data", "--workers", "2", "--ca-key-bits", "2048")
    try:
        client = server.client()
        client.create_server(**create_server_params("pup", "Puppet"))
        client.create_server(**create_server_params("chef", "ChefAutomate"))
        wait_for_status(client, "pup")
        wait_for_status(client, "chef")
        workers = [int(m["pid"]) for line in server.output if (m := WORKER.search(line))]
        assert len(workers) == 2

        secret = f"node{uuid.uuid4().hex[:10]}"  # in every node name: must never appear in /metrics
        key = rsa_key()
        made = {"Puppet": [], "ChefAutomate": []}

        def associate(i: int) -> tuple[str, str]:
            own = server.client()  # a connection of its own: the kernel hands it to either worker
            name = f"{secret}-{i}"
            if i % 2:
                attributes = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(name, key)}]
                own.associate_node(ServerName="pup", NodeName=name, EngineAttributes=attributes)
                return "Puppet", name
            attributes = [{"Name": "CHEF_ORGANIZATION", "Value": "default"},
                          {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(key)}]
            own.associate_node(ServerName="chef", NodeName=name, EngineAttributes=attributes)
            return "ChefAutomate", name

        rounds = 0
        while not all(_associations_answered_by(shared, pid) for pid in workers):
            assert rounds < 8, "the associations never reached both workers"
            with ThreadPoolExecutor(8) as pool:
                for engine, name in pool.map(associate, range(rounds * 8, rounds * 8 + 8)):
                    made[engine].append(name)
            rounds += 1
        for engine, server_name, count in (("Puppet", "pup", 2), ("ChefAutomate", "chef", 1)):
            for name in made[engine][:count]:
                attributes = [] if engine == "Puppet" else [{"Name": "CHEF_ORGANIZATION", "Value": "default"}]
                client.disassociate_node(ServerName=server_name, NodeName=name, EngineAttributes=attributes)
        refused = f"{secret}-refused"  # a CSR for another name
        try:
            client.associate_node(ServerName="pup", NodeName=refused,
                                  EngineAttributes=[{"Name": "PUPPET_NODE_CSR", "Value": make_csr("other", key)}])
        except client.exceptions.ValidationException:
            pass
        else:
            raise AssertionError("a CSR for another name was accepted")

        text, samples = _scrape(server.url)
        puppet, chef = len(made["Puppet"]), len(made["ChefAutomate"])
        # Each worker counted its share; the scrape, answered by one of them, is the sum.
        per_worker = [_associations_answered_by(shared, pid) for pid in workers]
        assert all(per_worker) and sum(per_worker) == puppet + chef + 1
        assert _value(samples, "opscm_requests_total", operation="AssociateNode", outcome="success") == puppet + chef
        assert _value(samples, "opscm_requests_total", operation="AssociateNode", outcome="ValidationException") == 1
        assert _value(samples, "opscm_associations_total", engine="Puppet", outcome="success") == puppet
        assert _value(samples, "opscm_associations_total", engine="ChefAutomate", outcome="success") == chef
        assert _value(samples, "opscm_associations_total", engine="Puppet", outcome="refused") == 1
        assert _value(samples, "opscm_disassociations_total", engine="Puppet", outcome="success") == 2
        assert _value(samples, "opscm_disassociations_total", engine="ChefAutomate", outcome="success") == 1
        assert _value(samples, "opscm_certificates_issued_total") == puppet
        assert _value(samples, "opscm_certificates_revoked_total") == 2

        buckets = {labels: value for (name, labels), value in samples.items()
                   if name == "opscm_request_duration_seconds_bucket" and ("operation", "AssociateNode") in labels}
        bounds = sorted(float(dict(labels)["le"]) for labels in buckets)
        assert bounds == [*LATENCY_BUCKETS, math.inf]
        everything = _value(samples, "opscm_request_duration_seconds_bucket", operation="AssociateNode", le="+Inf")
        assert everything == puppet + chef + 1 == _value(samples, "opscm_request_duration_seconds_count", operation="AssociateNode")

        account = server.client().describe_servers(ServerName="pup")["Servers"][0]["ServerArn"].split(":")[4]
        where = {"account": account, "region": "us-east-1", "server": "pup"}
        expiry = _value(samples, "opscm_certificate_expiry_seconds", **where)
        assert NODE_CERT_SECONDS - 3600 < expiry <= NODE_CERT_SECONDS, "the soonest: a node certificate's"
        assert 0 <= _value(samples, "opscm_crl_age_seconds", **where) < 600
        assert not [key for key in samples if key[0] == "opscm_certificate_expiry_seconds" and ("server", "chef") in key[1]]
        assert _value(samples, "opscm_servers", engine="Puppet", status="HEALTHY") == 1
        assert _value(samples, "opscm_servers", engine="ChefAutomate", status="HEALTHY") == 1
        assert _value(samples, "opscm_servers", engine="Puppet", status="CREATING") == 0
        assert ("opscm_jobs", (("state", "pending"),)) in samples and ("opscm_jobs", (("state", "failed"),)) in samples
        assert _value(samples, "opscm_worker_processes") == 2
        assert secret not in text, "a node name is never a label"

        # A worker killed: its counts stay in the sums, its share of the live gauge goes.
        os.kill(workers[1], signal.SIGKILL)
        restarted = wait_for(
            lambda: [int(m["pid"]) for line in server.output if "(restarted)" in line and (m := WORKER.search(line))], 20,
            "a restarted worker",
        )[0]
        wait_for(lambda: (shared / f"gauge_livesum_{restarted}.db").exists(), 20, "the new worker's metrics")
        _, after = _scrape(server.url)
        assert _value(after, "opscm_worker_processes") == 2
        assert _value(after, "opscm_associations_total", engine="Puppet", outcome="success") == puppet
        assert _value(after, "opscm_requests_total", operation="AssociateNode", outcome="success") == puppet + chef
    finally:
        server.stop()


def test_metrics_off_is_a_404(tmp_path):
    server = start_server(tmp_path, "--metrics", "off")
    try:
        server.client().describe_servers()
        assert httpx.get(f"{server.url}/metrics").status_code == 404
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()


def test_metrics_on_a_port_of_their_own(tmp_path):
    server = start_server(tmp_path, "--metrics-port", "0")
    try:
        announced = next(m for line in server.output if (m := re.search(r"opscm: metrics on (\S+)/metrics$", line.strip())))
        metrics_url = announced[1]
        assert metrics_url != server.url
        server.client().describe_servers()
        assert httpx.get(f"{server.url}/metrics").status_code == 404, "not on the API's port"
        _, samples = _scrape(metrics_url)
        assert _value(samples, "opscm_requests_total", operation="DescribeServers", outcome="success") == 1
        assert httpx.post(f"{metrics_url}/", content=b"{}").status_code == 404, "the API is not served there"
    finally:
        server.stop()


def test_one_process_scrapes_its_own_counts(tmp_path):
    """An Application alone in its process (no supervisor): its own registry, the same names."""
    app = Application(Settings(data_dir=tmp_path, verify_signatures=False, metrics=True))
    try:
        assert call(app, "DescribeServers", b"{}")[0] == 200
        assert call(app, "DescribeServers", b'{"ServerName": "nowhere"}')[0] == 400
        answer = TestClient(app.asgi).get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert answer.headers["content-type"].startswith("application/openmetrics-text")
        assert answer.text.endswith("# EOF\n")
        samples = _samples(TestClient(app.asgi).get("/metrics").text)
        assert _value(samples, "opscm_requests_total", operation="DescribeServers", outcome="success") == 1
        assert _value(samples, "opscm_requests_total", operation="DescribeServers", outcome="ResourceNotFoundException") == 1
        assert _value(samples, "opscm_worker_processes") == 1
    finally:
        app.close()
