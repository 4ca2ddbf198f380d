import pytest

from tests.support.requirements import require_marked
from tests.support.server import TEST_REGIONS, start_server

pytest_plugins = ["pytester", "tests.support.goiardi", "tests.support.puppetserver"]


@pytest.fixture(scope="session")
def opscm(tmp_path_factory):
    """One real `opscm serve` for the session (2048-bit CAs to keep the suite quick)."""
    server = start_server(tmp_path_factory.mktemp("opscm-data"), "--ca-key-bits", "2048", "--server-limit", "10", "--schedule-interval", "0", "--regions", ",".join(TEST_REGIONS))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def client(opscm):
    return opscm.client()


def pytest_runtest_setup(item):
    require_marked(item)  # a test marked puppet / awscli / openssl needs that peer
