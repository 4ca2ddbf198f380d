"""What a key may do (actions, servers named by a request) and the per-account token buckets."""

import pytest

from opscm.app.credentials import (
    KeyRing,
    action_matches,
    allows,
    check_actions,
    check_server_names,
    new_access_key,
)
from opscm.app.pipeline import servers_touched
from opscm.app.throttle import TokenBuckets
from opscm.domain.backups import server_name_of_backup
from opscm.service.context import Caller


@pytest.mark.parametrize(
    "pattern, operation, expected",
    [
        ("opsworks-cm:AssociateNode", "AssociateNode", True),
        ("opsworks-cm:associatenode", "AssociateNode", True),
        ("OpsWorks-CM:AssociateNode", "AssociateNode", True),
        ("opsworks-cm:AssociateNode", "DisassociateNode", False),
        ("opsworks-cm:Describe*", "DescribeServers", True),
        ("opsworks-cm:Describe*", "CreateServer", False),
        ("opsworks-cm:*", "DeleteServer", True),
        ("opsworks-cm:*Node", "DisassociateNode", True),
        ("opsworks-cm:?reateServer", "CreateServer", True),
        ("opsworks-cm:[C]reateServer", "CreateServer", False),  # no character classes in IAM
        ("opsworks:*", "CreateServer", False),
        ("*", "CreateServer", False),
    ],
)
def test_action_matching(pattern, operation, expected):
    assert action_matches(pattern, operation) is expected


def test_allows_any_of_the_key_patterns():
    key = new_access_key("123456789012", "n", ("opsworks-cm:AssociateNode", "opsworks-cm:Describe*"))
    assert allows(key, "AssociateNode") and allows(key, "DescribeEvents")
    assert not allows(key, "CreateServer")


def test_check_actions_and_server_names():
    assert check_actions([" opsworks-cm:Describe* ", "opsworks-cm:AssociateNode"]) == (
        "opsworks-cm:Describe*",
        "opsworks-cm:AssociateNode",
    )
    for bad in (["opsworks-cm:Nothing*"], ["ec2:*"], ["AssociateNode"], ["opsworks-cm:"], []):
        with pytest.raises(ValueError):
            check_actions(bad)
    assert check_server_names(["a", "b-2", "a"]) == ("a", "b-2")
    for bad in (["1abc"], ["a b"], ["a" * 41], [""]):
        with pytest.raises(ValueError):
            check_server_names(bad)


def test_server_name_of_backup():
    assert server_name_of_backup("web-1-20240101093000123") == "web-1"
    assert server_name_of_backup("web-2024") is None
    assert server_name_of_backup("-20240101093000123") is None
    assert server_name_of_backup("web") is None


def test_servers_touched():
    caller = Caller("111122223333", "eu-west-1", ("web",))
    assert servers_touched(caller, {}) == []
    assert servers_touched(caller, {"ServerName": "web"}) == [
        ("web", "arn:aws:opsworks-cm:eu-west-1:111122223333:server/web/*")
    ]
    assert servers_touched(caller, {"BackupId": "db-20240101093000123"}) == [
        ("db", "arn:aws:opsworks-cm:eu-west-1:111122223333:backup/db-20240101093000123")
    ]
    server_arn = "arn:aws:opsworks-cm:eu-west-1:111122223333:server/web/0f1e"
    backup_arn = "arn:aws:opsworks-cm:eu-west-1:111122223333:backup/db-20240101093000123"
    assert servers_touched(caller, {"ResourceArn": server_arn}) == [("web", server_arn)]
    assert servers_touched(caller, {"ResourceArn": backup_arn}) == [("db", backup_arn)]
    assert servers_touched(caller, {"ResourceArn": "arn:aws:s3:::bucket"}) == [(None, "arn:aws:s3:::bucket")]
    # RestoreServer names a backup and a server: both count.
    touched = servers_touched(caller, {"ServerName": "web", "BackupId": "db-20240101093000123"})
    assert [name for name, _ in touched] == ["web", "db"]


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_buckets_per_account():
    clock = FakeTime()
    buckets = TokenBuckets(rate=5, burst=10, now=clock)
    assert all(buckets.take("a") for _ in range(10))
    assert not buckets.take("a")
    assert buckets.take("b")  # each account has its own bucket
    clock.now += 0.2  # one token back at 5/s
    assert buckets.take("a")
    assert not buckets.take("a")
    clock.now += 60  # never more than the burst
    assert sum(buckets.take("a") for _ in range(20)) == 10
    with pytest.raises(ValueError):
        TokenBuckets(rate=0)


@pytest.mark.parametrize(
    "key_id", ["", "AKIA\x00AAAAAAAAAAAAAAA", "AKIA" + "A" * 125, "AKIA-AAAAAAAAAAAAAAA", "AKIA\ud800AAAAAAAAAAAAAAA"]
)
def test_keys_that_cannot_exist_are_not_looked_up(key_id):
    def no_store(**_):
        raise AssertionError("the store was asked")

    assert KeyRing(no_store, box=None).find(key_id) is None
