"""pytest fixtures for the in-process mock, loaded by the entry point ``opscm`` (pytest11).

- ``opsworkscm_mock``: a fresh ``OpsWorksCMMock`` active for the test, as under
  ``mock_opsworkscm``: every opsworkscm client the test or the code under test creates is
  answered by it;
- ``opsworkscm_client``: a boto3 client attached to it (region us-east-1, dummy credentials);
- ``opsworkscm_clock``: the mock's clock, ``None`` for real time; override it to move time;
- ``@pytest.mark.opsworkscm(**options)``: ``OpsWorksCMMock`` options for a test, a class or a
  module (the closest wins), over the ini options ``opsworkscm_ca_key_bits`` and
  ``opsworkscm_run_jobs``.

opscm itself is imported only when a fixture is used: loading the plugin costs a pytest run nothing.
"""

from __future__ import annotations

import pytest

MARKER = "opsworkscm"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("opsworkscm_ca_key_bits", "RSA key size of the opsworkscm mock's Puppet CAs", default="2048")
    parser.addini("opsworkscm_run_jobs", "run the opsworkscm mock's background jobs (servers become HEALTHY)", type="bool", default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of opsworkscm_mock, as OpsWorksCMMock's "
        "(ca_key_bits, run_jobs, account_id, server_limit, regions, clock)",
    )


@pytest.fixture
def opsworkscm_clock():
    """The clock of opsworkscm_mock: any object with now() -> aware UTC datetime; here none, real time."""


@pytest.fixture
def opsworkscm_mock(request: pytest.FixtureRequest, opsworkscm_clock):
    from opscm.mock import mock_opsworkscm

    with mock_opsworkscm(**_options(request, opsworkscm_clock)) as mock:
        yield mock


@pytest.fixture
def opsworkscm_client(opsworkscm_mock):
    import boto3

    session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    client = session.client("opsworkscm")
    opsworkscm_mock.attach(client)  # stays with this test's mock even inside a nested mock_opsworkscm
    return client


def _options(request: pytest.FixtureRequest, clock) -> dict:
    config = request.config
    options = {
        "ca_key_bits": int(config.getini("opsworkscm_ca_key_bits")),
        "run_jobs": config.getini("opsworkscm_run_jobs"),
        "clock": clock,
    }
    # iter_markers goes from the test outwards: apply the farthest first so the closest wins.
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        if marker.args:
            raise TypeError(f"@pytest.mark.{MARKER} takes keyword options only, got {marker.args!r}")
        options.update(marker.kwargs)
    return options
