"""Association rules that protect the store and the engines: node names."""

import pytest

from opscm.domain.associations import MAX_CHEF_CLIENT_NAME, check_chef_client_name
from opscm.domain.errors import ValidationFailed


@pytest.mark.parametrize("name", ["n", "web-1.example.com", "a_b", "x" * MAX_CHEF_CLIENT_NAME])
def test_chef_client_names_accepted(name):
    check_chef_client_name(name)


def test_chef_client_names_longer_than_chef_server_takes_are_refused():
    with pytest.raises(ValidationFailed) as raised:
        check_chef_client_name("x" * (MAX_CHEF_CLIENT_NAME + 1))
    assert str(raised.value) == "NodeName is 256 characters long; a Chef client name has at most 255."


@pytest.mark.parametrize("name", ["", "a b", "a:b", "a\x00"])
def test_chef_client_names_of_other_characters_are_refused(name):
    with pytest.raises(ValidationFailed):
        check_chef_client_name(name)
