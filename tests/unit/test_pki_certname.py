"""Puppet certname rules (FACTS.md, "Puppet CA" refusals)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opscm.pki import InvalidCertname, PkiError, check_certname


@pytest.mark.parametrize(
    "name",
    [
        "web1",
        "a",
        "_",
        "0",
        "web1.example.com",
        "web-1.example.com",
        "web_1",
        "_web.example",
        "x.-y",  # only the first label must not start with '-'
        "x.y_",
        "a" * 64,
        "ip-10-0-0-1.ec2.internal",
    ],
)
def test_good_certnames(name):
    check_certname(name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "Certname must not be empty"),
        ("Web1", "Certname 'Web1' must be lower case"),
        ("web1.Example.com", "Certname 'web1.Example.com' must be lower case"),
        ("*.example.com", "Certname '*.example.com' must not contain a wildcard ('*')"),
        ("web*", "Certname 'web*' must not contain a wildcard ('*')"),
        ("-web1", "Certname '-web1' must start with a letter, digit or underscore"),
        ("web1-", "Certname 'web1-' has a label ending in '-' ('web1-')"),
        ("web1-.example", "Certname 'web1-.example' has a label ending in '-' ('web1-')"),
        ("web1.", "Certname 'web1.' has an empty label (leading, trailing or consecutive dots)"),
        (".web1", "Certname '.web1' has an empty label (leading, trailing or consecutive dots)"),
        ("web..1", "Certname 'web..1' has an empty label (leading, trailing or consecutive dots)"),
        (
            "web 1",
            "Certname 'web 1' contains the character ' '; only letters, digits, '-', '_' and '.' are allowed",
        ),
        (
            "web/1",
            "Certname 'web/1' contains the character '/'; only letters, digits, '-', '_' and '.' are allowed",
        ),
        (
            "wéb",
            "Certname 'wéb' contains the character 'é'; only letters, digits, '-', '_' and '.' are allowed",
        ),
        (
            "web1\n",
            "Certname 'web1\\n' contains the character '\\n'; only letters, digits, '-', '_' and '.' are allowed",
        ),
        ("a" * 65, f"Certname '{'a' * 65}' is 65 characters long; at most 64 are allowed"),
    ],
)
def test_bad_certnames(name, message):
    with pytest.raises(InvalidCertname) as info:
        check_certname(name)
    assert str(info.value) == message


def test_invalid_certname_is_a_pki_error_and_a_value_error():
    with pytest.raises(PkiError):
        check_certname("Web1")
    with pytest.raises(ValueError):
        check_certname("Web1")


def test_huge_name_is_cut_in_the_message():
    with pytest.raises(InvalidCertname) as info:
        check_certname("a" * 10_000 + "*")
    assert len(str(info.value)) < 200
    assert "...'" in str(info.value)


def test_non_string_refused():
    with pytest.raises(InvalidCertname, match="must be a string"):
        check_certname(None)  # type: ignore[arg-type]


LABEL = r"[A-Za-z0-9\-_]*[A-Za-z0-9_]"


@given(st.text(alphabet=st.sampled_from("abAB09-_.*é \n"), max_size=20))
def test_property_accepted_names_follow_every_rule(name):
    try:
        check_certname(name)
    except InvalidCertname as e:
        assert str(e)  # refusals always explain themselves
        return
    assert name and name == name.lower() and "*" not in name and len(name) <= 64
    assert all(re.fullmatch(LABEL, label) for label in name.split("."))
    assert re.match(r"[A-Za-z0-9_]", name)
