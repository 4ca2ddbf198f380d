"""Output serialization, checked by botocore's own JSON response parser."""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.model import ServiceModel
from botocore.parsers import create_parser

from opscm.protocol.json11 import JsonProtocol
from opscm.protocol.serializer import epoch_seconds, serialize_output
from opscm.spec import service_model

MODEL = service_model()
PROTOCOL = JsonProtocol(MODEL)


def output(name):
    return MODEL.operation_model(name).output_shape


def botocore_parse(shape, body: dict) -> dict:
    raw = {"status_code": 200, "headers": {"x-amzn-requestid": "r"}, "body": json.dumps(body).encode()}
    parsed = create_parser("json").parse(raw, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


SERVER = {
    "ServerName": "chef-1",
    "CreatedAt": datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC),
    "AssociatePublicIpAddress": True,
    "BackupRetentionCount": 10,
    "DisableAutomatedBackup": False,
    "Endpoint": "chef-1.example.com",
    "Engine": "ChefAutomate",
    "EngineAttributes": [
        {"Name": "CHEF_AUTOMATE_PIVOTAL_KEY", "Value": "-----BEGIN RSA PRIVATE KEY-----\n...\n"},
        {"Name": "UNICODE", "Value": "日本語 ✓ \U0001f600"},
    ],
    "SecurityGroupIds": ["sg-1", "sg-2"],
    "SubnetIds": [],
    "Status": "HEALTHY",
    "StatusReason": None,
}


def test_describe_servers_round_trip_through_botocore():
    data = {"Servers": [SERVER, {"ServerName": "puppet-1", "Status": "CREATING"}], "NextToken": None}
    body = serialize_output(output("DescribeServers"), data)
    assert body["Servers"][0]["CreatedAt"] == 1704164645.123
    assert "StatusReason" not in body["Servers"][0] and "NextToken" not in body
    parsed = botocore_parse(output("DescribeServers"), body)
    expected = {k: v for k, v in SERVER.items() if v is not None}
    assert parsed["Servers"][0] == expected
    assert parsed["Servers"][1] == {"ServerName": "puppet-1", "Status": "CREATING"}


def test_timestamps_are_epoch_numbers():
    shape = output("DescribeEvents")
    naive = datetime(2023, 11, 14, 22, 13, 20)  # taken as UTC
    other_zone = datetime(2023, 11, 15, 0, 13, 20, tzinfo=timezone(timedelta(hours=2)))
    body = serialize_output(
        shape,
        {
            "ServerEvents": [
                {"CreatedAt": naive},
                {"CreatedAt": other_zone},
                {"CreatedAt": datetime(2023, 11, 14, 22, 13, 20, 999999, tzinfo=UTC)},
                {"CreatedAt": 1700000000.25},
            ]
        },
    )
    stamps = [event["CreatedAt"] for event in body["ServerEvents"]]
    assert stamps == [1700000000, 1700000000, 1700000001, 1700000000.25]
    assert all(isinstance(stamp, (int, float)) and not isinstance(stamp, bool) for stamp in stamps)
    assert json.dumps(body) == (
        '{"ServerEvents": [{"CreatedAt": 1700000000}, {"CreatedAt": 1700000000}, '
        '{"CreatedAt": 1700000001}, {"CreatedAt": 1700000000.25}]}'
    )
    parsed = botocore_parse(shape, body)
    assert parsed["ServerEvents"][0]["CreatedAt"] == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert epoch_seconds(datetime(1970, 1, 1, 0, 0, 0, 1500, tzinfo=UTC)) == 0.002


def test_nested_structures_and_lists():
    data = {
        "Backups": [
            {
                "BackupId": "b-1",
                "SecurityGroupIds": ["sg"],
                "CreatedAt": datetime(2024, 1, 1, tzinfo=UTC),
                "S3DataSize": 0,
                "BackupType": "MANUAL",
            }
        ]
    }
    body = serialize_output(output("DescribeBackups"), data)
    assert body == {
        "Backups": [
            {
                "BackupId": "b-1",
                "SecurityGroupIds": ["sg"],
                "CreatedAt": 1704067200,
                "S3DataSize": 0,
                "BackupType": "MANUAL",
            }
        ]
    }
    assert botocore_parse(output("DescribeBackups"), body) == data


def test_empty_and_enum_values():
    class Status(enum.Enum):
        OK = "SUCCESS"

    assert serialize_output(output("DeleteServer"), {}) == {}
    body = serialize_output(
        output("DescribeNodeAssociationStatus"), {"NodeAssociationStatus": Status.OK, "EngineAttributes": []}
    )
    assert body == {"NodeAssociationStatus": "SUCCESS", "EngineAttributes": []}


@pytest.mark.parametrize(
    ("operation", "data", "fragment"),
    [
        ("DescribeServers", {"Servers": [], "Unknown": 1}, "Unknown not a member of DescribeServersResponse"),
        ("DescribeServers", {"Servers": [{"ServerName": "s", "Bogus": 1}]}, "Bogus not a member of Server"),
        ("DescribeServers", {"Servers": [{"EngineAttributes": [{"Name": "a", "Secret": "x"}]}]}, "Secret not a member"),
        ("DescribeServers", {"Servers": {"ServerName": "s"}}, "expected a sequence"),
        ("DescribeServers", {"Servers": "s"}, "expected a sequence"),
        ("DescribeServers", {"Servers": ["s"]}, "expected a mapping"),
        ("DescribeServers", {"Servers": [None]}, "expected a structure"),
        ("DescribeServers", {"Servers": [{"ServerName": 1}]}, "expected str"),
        ("DescribeServers", {"Servers": [{"BackupRetentionCount": True}]}, "expected int"),
        ("DescribeServers", {"Servers": [{"BackupRetentionCount": "1"}]}, "expected int"),
        ("DescribeServers", {"Servers": [{"AssociatePublicIpAddress": 1}]}, "expected bool"),
        ("DescribeServers", {"Servers": [{"CreatedAt": "2024-01-01"}]}, "expected datetime"),
        ("DescribeServers", {"Servers": [{"SecurityGroupIds": [1]}]}, "expected str"),
    ],
)
def test_programmer_errors_raise_value_error(operation, data, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[")):
        serialize_output(output(operation), data)


def test_not_a_mapping_raises():
    with pytest.raises(ValueError):
        serialize_output(output("DescribeServers"), [])  # type: ignore[arg-type]


def test_response_uses_the_serializer_and_botocore_reads_it():
    operation = MODEL.operation_model("AssociateNode")
    response = PROTOCOL.response(operation, {"NodeAssociationStatusToken": "dG9rZW4="}, "req-1")
    assert response.status == 200
    assert ("Content-Type", "application/x-amz-json-1.1") in response.headers
    assert ("x-amzn-RequestId", "req-1") in response.headers
    raw = {"status_code": 200, "headers": {k.lower(): v for k, v in response.headers}, "body": response.body}
    parsed = create_parser("json").parse(raw, operation.output_shape)
    assert parsed["NodeAssociationStatusToken"] == "dG9rZW4="
    assert parsed["ResponseMetadata"]["RequestId"] == "req-1"
    with pytest.raises(ValueError):
        PROTOCOL.response(operation, {"Nope": 1}, "req-2")


SYNTHETIC = ServiceModel(
    {
        "metadata": {"protocol": "json", "apiVersion": "2020-01-01", "jsonVersion": "1.1", "targetPrefix": "Synth"},
        "operations": {
            "Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"}, "output": {"shape": "Out"}},
            "NoOutput": {"name": "NoOutput", "http": {"method": "POST", "requestUri": "/"}},
        },
        "shapes": {
            "Out": {
                "type": "structure",
                "members": {
                    "Data": {"shape": "Bytes"},
                    "Ratio": {"shape": "Ratio"},
                    "Big": {"shape": "Big"},
                    "Iso": {"shape": "IsoStamp"},
                    "Http": {"shape": "HttpStamp"},
                    "Labels": {"shape": "Labels"},
                    "Nested": {"shape": "Nested"},
                    "Doc": {"shape": "Doc"},
                    "Renamed": {"shape": "Str", "locationName": "wire"},
                    "Matrix": {"shape": "Matrix"},
                },
            },
            "Bytes": {"type": "blob"},
            "Ratio": {"type": "double"},
            "Big": {"type": "long"},
            "IsoStamp": {"type": "timestamp", "timestampFormat": "iso8601"},
            "HttpStamp": {"type": "timestamp", "timestampFormat": "rfc822"},
            "Str": {"type": "string"},
            "Labels": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Str"}},
            "Nested": {"type": "map", "key": {"shape": "Str"}, "value": {"shape": "Out"}},
            "Doc": {"type": "structure", "members": {}, "document": True},
            "Matrix": {"type": "list", "member": {"shape": "Row"}},
            "Row": {"type": "list", "member": {"shape": "Ratio"}},
        },
    },
    service_name="synth",
)


def test_generic_shapes_round_trip():
    shape = SYNTHETIC.operation_model("Op").output_shape
    moment = datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    data = {
        "Data": b"\x00\xffbytes",
        "Ratio": 0.25,
        "Big": 2**40,
        "Iso": moment,
        "Http": moment,
        "Labels": {"a": "b"},
        "Nested": {"k": {"Renamed": "x", "Labels": {}}},
        "Doc": {"free": [1, {"form": None}]},
        "Matrix": [[1.5, 2], []],
    }
    body = serialize_output(shape, data)
    assert body["Iso"] == "2024-05-06T07:08:09.500Z"
    assert body["Http"] == "Mon, 06 May 2024 07:08:09 GMT"
    assert body["Nested"] == {"k": {"wire": "x", "Labels": {}}}
    assert body["Data"] == "AP9ieXRlcw=="
    parsed = botocore_parse(shape, body)
    assert parsed["Data"] == data["Data"] and parsed["Big"] == 2**40 and parsed["Ratio"] == 0.25
    assert parsed["Iso"] == moment
    assert parsed["Http"] == moment.replace(microsecond=0)
    assert parsed["Labels"] == {"a": "b"} and parsed["Nested"] == {"k": {"Renamed": "x", "Labels": {}}}
    assert parsed["Doc"] == data["Doc"] and parsed["Matrix"] == [[1.5, 2], []]
    special = serialize_output(shape, {"Ratio": math.inf})
    assert special == {"Ratio": "Infinity"}
    assert serialize_output(shape, {"Ratio": -math.inf}) == {"Ratio": "-Infinity"}
    assert serialize_output(shape, {"Ratio": math.nan}) == {"Ratio": "NaN"}
    with pytest.raises(ValueError):
        serialize_output(shape, {"Data": "not bytes"})
    with pytest.raises(ValueError):
        serialize_output(shape, {"Labels": {"a": 1}})
    with pytest.raises(ValueError):
        serialize_output(shape, {"Labels": ["a"]})


def test_operation_without_output_shape():
    operation = SYNTHETIC.operation_model("NoOutput")
    protocol = JsonProtocol(SYNTHETIC)
    assert protocol.response(operation, {}, "r").body == b"{}"
    with pytest.raises(ValueError):
        protocol.response(operation, {"x": 1}, "r")
