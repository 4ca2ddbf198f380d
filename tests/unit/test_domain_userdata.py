"""The pure builders of user data scripts and starter kits."""

import io
import re
import subprocess
import zipfile

import pytest

from opscm.domain.errors import ValidationFailed
from opscm.domain.starter_kits import starter_kit
from opscm.domain.userdata import NodeOptions, Target, node_options, shell_quote, user_data_script

CHEF = Target("ChefAutomate", "chef1", "eu-west-1", "chef.example.com", "https://opscm.example.com")
PUPPET = Target("Puppet", "pup1", "eu-west-1", "puppet.example.com", "https://opscm.example.com")


@pytest.mark.parametrize("value", ["", "plain", "it's", "$(id) `id` ${HOME}", "a\nb", "'\"\\", "!*?[x]"])
def test_shell_quote_is_literal(value):
    echoed = subprocess.run(["bash", "-c", f"printf %s {shell_quote(value)}"], capture_output=True, text=True)
    assert echoed.stdout == value


@pytest.mark.parametrize("target", [CHEF, PUPPET])
def test_every_placeholder_is_filled(target):
    script = user_data_script(target)
    assert not re.search(r"@[A-Z][A-Z0-9_]*@", script)
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


def test_chef_options():
    options = node_options("ChefAutomate", [
        {"Name": "RunList", "Value": " recipe[a::b@1.2.3] ,role[web],, c "},
        {"Name": "NodeEnvironment", "Value": "dev"},
        {"Name": "NodeClientVersion", "Value": "13.8.5"},
        {"Name": "OrganizationName", "Value": ""},
    ])
    assert options == NodeOptions(("recipe[a::b@1.2.3]", "role[web]", "c"), "default", "dev", "13.8.5", "")


@pytest.mark.parametrize("attributes", [
    [{"Name": "RunList", "Value": "recipe[a] recipe[b]"}],
    [{"Name": "RunList", "Value": "role[a::b]"}],
    [{"Name": "RunList", "Value": "recipe[a'b]"}],
    [{"Name": "RunList", "Value": "a"}, {"Name": "RunList", "Value": "b"}],
    [{"Name": "NodeClientVersion", "Value": "1.2.3.4"}],
])
def test_bad_chef_options(attributes):
    with pytest.raises(ValidationFailed):
        node_options("ChefAutomate", attributes)


def test_puppet_options():
    assert node_options("Puppet", [{"Name": "PUPPET_NODE_ENVIRONMENT", "Value": "prod_1"}]).puppet_environment == "prod_1"
    assert node_options("Puppet", [{"Name": "RunList", "Value": "anything at all"}]) == NodeOptions()


def test_kits_are_a_function_of_their_contents():
    attributes = {"PUPPET_API_CA_CERT": "-----BEGIN CERTIFICATE-----\n...\n"}
    assert starter_kit(PUPPET, attributes) == starter_kit(PUPPET, attributes)
    names = zipfile.ZipFile(io.BytesIO(starter_kit(CHEF, {}))).namelist()
    assert names == ["chef1-starter-kit/.chef/config.rb", "chef1-starter-kit/README.md", "chef1-starter-kit/userdata.sh"]
