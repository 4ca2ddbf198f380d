"""The job runner's threads: one idle thread polls the store, and a busy one hands polling on."""

import threading
from datetime import timedelta

import boto3
import pytest

from opscm.app import job_runner
from opscm.mock import OpsWorksCMMock
from opscm.service import jobs, leases
from opscm.service.ports import Job
from opscm.store.sql.jobs import SqlJobs
from tests.support.clock import FakeClock
from tests.support.requests import create_server_params
from tests.support.waiting import wait_for

WAIT_SECONDS = 30.0  # a generous bound for a busy CI machine; nothing is timed


@pytest.fixture
def fast_polls(monkeypatch):
    monkeypatch.setattr(job_runner, "POLL_SECONDS", 0.005)


def _server_id(mock: OpsWorksCMMock) -> str:
    client = boto3.client("opsworkscm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    mock.attach(client)
    client.create_server(**create_server_params("jobs", "ChefAutomate"))
    mock.wait_for_jobs()
    with mock.app.deps.uow(read_only=True) as uow:
        return uow.servers.get("123456789012", "us-east-1", "jobs").id


def test_an_idle_runner_polls_from_one_thread(fast_polls, monkeypatch):
    polls: list[str] = []
    claimable = SqlJobs.claimable

    def counted(self, now):
        polls.append(threading.current_thread().name)
        return claimable(self, now)

    monkeypatch.setattr(SqlJobs, "claimable", counted)
    with OpsWorksCMMock(run_jobs=False) as mock:
        runner = job_runner.JobRunner(workers=3)
        runner.bind(mock.app.deps)
        runner.start()
        try:
            wait_for(lambda: len(polls) >= 40, WAIT_SECONDS, "40 polls")
        finally:
            runner.stop()
    per_thread = sorted(polls.count(name) for name in set(polls))
    # Each thread looks once as it starts; after that only the polling thread asks the store.
    assert len(per_thread) == 3
    assert per_thread[:2] == [1, 1]


def test_a_job_queued_elsewhere_starts_while_another_job_runs(fast_polls, monkeypatch):
    release = threading.Event()
    started: list[str] = []

    def slow(deps, server_id, payload):
        started.append(payload["name"])
        if payload["name"] == "first":
            release.wait(WAIT_SECONDS)

    monkeypatch.setitem(jobs.JOB_KINDS, "test-slow", slow)
    with OpsWorksCMMock() as mock:
        server_id = _server_id(mock)
        deps = mock.app.deps
        try:
            for name in ("first", "second"):
                # Written straight to the store, as another worker process would: no wake here.
                with deps.uow() as uow:
                    uow.jobs.add("test-slow", server_id, deps.clock.now(), {"name": name})
                    uow.commit()
                wait_for(lambda: name in started, WAIT_SECONDS, f"job {name} to start")
            assert started == ["first", "second"]
        finally:
            release.set()
        mock.wait_for_jobs()


def test_a_job_that_outlives_its_lease_is_not_run_again_meanwhile(fast_polls, monkeypatch):
    """The process's other runner threads never take a job it runs, whatever its lease says, and
    the lease is renewed while it runs (another replica does not take it over either)."""
    clock = FakeClock()
    release, runs = threading.Event(), []
    renewals: list[int] = []
    renew = SqlJobs.renew

    def counted_renew(self, job_id, attempt, until):
        kept = renew(self, job_id, attempt, until)
        renewals.append(kept)
        return kept

    def long(deps, server_id, payload):
        runs.append(threading.current_thread().name)
        clock.advance(timedelta(seconds=job_runner.LEASE_SECONDS + 1))  # longer than its lease
        release.wait(WAIT_SECONDS)

    monkeypatch.setitem(jobs.JOB_KINDS, "test-long", long)
    monkeypatch.setattr(job_runner, "RENEW_SECONDS", 0.05)
    monkeypatch.setattr(SqlJobs, "renew", counted_renew)
    with OpsWorksCMMock(clock=clock) as mock:
        server_id = _server_id(mock)
        deps = mock.app.deps
        try:
            with deps.uow() as uow:
                uow.jobs.add("test-long", server_id, deps.clock.now())
                uow.commit()
            mock.app.jobs.wake()
            wait_for(lambda: len(renewals) >= 3, WAIT_SECONDS, "the lease renewed three times")
            assert runs == [runs[0]] and all(renewals)
            with deps.uow(read_only=True) as uow:
                assert not uow.jobs.claimable(clock.now())  # its lease renewed: no other replica takes it
        finally:
            release.set()
        mock.wait_for_jobs()
    assert len(runs) == 1


def test_a_request_that_asks_a_backend_keeps_its_jobs_lease(monkeypatch):
    """A remote node change's own attempt (several backend calls may outlast the lease) renews
    the lease of its job: the runner takes the job over only when that process is gone."""
    clock = FakeClock()
    renewed = threading.Event()
    renew = SqlJobs.renew

    def noted(self, job_id, attempt, until):
        kept = renew(self, job_id, attempt, until)
        renewed.set()
        return kept

    monkeypatch.setattr(SqlJobs, "renew", noted)
    with OpsWorksCMMock(run_jobs=False, clock=clock) as mock:
        server_id = _server_id(mock)
        deps = mock.app.deps
        with deps.uow() as uow:
            job_id = uow.jobs.add("node-change", server_id, clock.now(), {}, lease_seconds=30)
            uow.commit()
        job = Job(job_id, "node-change", server_id, attempts=1, payload={}, created_at=clock.now())
        with leases.lease_kept(deps, job, 30, every=0.01):
            clock.advance(timedelta(seconds=31))  # the attempt has run past its first lease
            renewed.clear()
            assert renewed.wait(WAIT_SECONDS)
            with deps.uow(read_only=True) as uow:
                assert not uow.jobs.claimable(clock.now())
        clock.advance(timedelta(seconds=31))  # the attempt's process is gone: no more renewals
        with deps.uow(read_only=True) as uow:
            assert uow.jobs.claimable(clock.now())
