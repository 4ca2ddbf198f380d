"""Real puppet agent runs against a real puppetserver: did the catalog apply, was it refused."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.puppet_agent import PuppetAgent

# A revoked agent is refused once puppetserver has reloaded its CRL (about 1 s after the
# file changes); each agent run takes a few seconds, so a few runs are plenty.
REFUSAL_ATTEMPTS = 10
TLS_REFUSAL = "alert certificate unknown"


def applied_catalog(run: subprocess.CompletedProcess) -> bool:
    # Detailed exit codes: 0 nothing changed, 2 changes applied; anything else failed.
    return run.returncode in (0, 2) and "Applied catalog" in run.stdout


def describe(run: subprocess.CompletedProcess) -> str:
    return f"exit {run.returncode}\nstdout:\n{run.stdout}\nstderr:\n{run.stderr}"


def assert_catalog_applied(agent: PuppetAgent, run: subprocess.CompletedProcess) -> None:
    assert applied_catalog(run), describe(run)
    assert f"opscm catalog for {agent.certname}" in run.stdout
    # What the server's compiler saw: an authenticated request by this certificate.
    assert agent.applied() == {"certname": agent.certname, "authenticated": "remote"}


def refused_run(agent: PuppetAgent, server: str, port: int) -> subprocess.CompletedProcess:
    """Run the agent until a run is refused (bounded): the CRL reload is asynchronous."""
    run = None
    for _ in range(REFUSAL_ATTEMPTS):
        agent.applied_path.unlink(missing_ok=True)
        run = agent.run_agent(server, port)
        if not applied_catalog(run) and "Applied catalog" not in run.stdout:
            return run
    pytest.fail(f"the agent still got its catalog after {REFUSAL_ATTEMPTS} runs\n{describe(run)}")
