import uuid

import pytest

from tests.support.requests import create_server_params
from tests.support.server import wait_for_status


def _healthy(client, engine):
    name = f"{engine.lower()[:6]}-{uuid.uuid4().hex[:8]}"
    created = client.create_server(**create_server_params(name, engine))["Server"]
    wait_for_status(client, name)
    return name, created


@pytest.fixture(scope="module")
def puppet_server(client):
    name, _ = _healthy(client, "Puppet")
    yield name
    client.delete_server(ServerName=name)


@pytest.fixture(scope="module")
def chef_server(client):
    name, _ = _healthy(client, "ChefAutomate")
    yield name
    client.delete_server(ServerName=name)
