"""Bounded work per request: bodies with absurd numbers of JSON values are refused before
``json.loads``, and validation renders only the errors it reports."""

from __future__ import annotations

import json
import tracemalloc

import pytest

from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import MAX_JSON_VALUES, JsonProtocol, json_value_count
from opscm.protocol.validation import MAX_REPORTED_ERRORS
from opscm.spec import service_model

MODEL = service_model()
PROTOCOL = JsonProtocol(MODEL)
ASSOCIATE = MODEL.operation_model("AssociateNode")
CREATE = MODEL.operation_model("CreateServer")

# The body of the security review: 3.8 MB of {} entries in EngineAttributes.
HUGE_BODY = (
    '{"ServerName":"s","NodeName":"n","EngineAttributes":[' + ",".join(["{}"] * 1_266_000) + "]}"
).encode()
# Peak of Python allocations while parsing HUGE_BODY: about 11 MB measured (a decoded copy and
# the scan's copy of the body); it was 187 MB when json.loads built the million dicts.
MAX_PEAK_BYTES = 40 * 1024 * 1024


def _values(value) -> int:
    if isinstance(value, dict):
        return 1 + sum(_values(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(_values(item) for item in value)
    return 1


def _empty_containers(value) -> int:
    if isinstance(value, (dict, list)):
        items = value.values() if isinstance(value, dict) else value
        return (not items) + sum(_empty_containers(item) for item in items)
    return 0


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        1,
        "x",
        {"a": [1, 2, {"b": None}], "c": "{[,,]}"},
        ["a,b", {"x": [1, 2, {}]}, '"[{,', "\\"],
        {"k{": {"k[": {"k,": []}}},
    ],
)
def test_the_count_is_the_values_plus_the_empty_containers(value):
    body = json.dumps(value).encode()
    assert json_value_count(body) == _values(value) + _empty_containers(value)


@pytest.mark.parametrize(
    ("body", "count"),
    [(b'"' + b'\\"' * 1000, 1), (b'"' + b'\\"' * 1000 + b"\\", 1), (b'"{[,', 1), (b'["a", "b{[,', 3)],
)
def test_an_unterminated_string_runs_to_the_end(body, count):
    # So no quote inside it starts a new string (the scan never restarts: linear time).
    assert json_value_count(body) == count


def test_the_largest_real_request_is_far_below_the_limit():
    request = {
        "ServerName": "s",
        "Engine": "ChefAutomate",
        "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/p",
        "InstanceType": "m5.large",
        "ServiceRoleArn": "arn:aws:iam::123456789012:role/r",
        "SecurityGroupIds": [f"sg-{i}" for i in range(5)],
        "SubnetIds": [f"subnet-{i}" for i in range(16)],
        "EngineAttributes": [{"Name": f"N{i}", "Value": "v"} for i in range(5)],
        "Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(200)],
    }
    body = json.dumps(request).encode()
    assert json_value_count(body) * 10 < MAX_JSON_VALUES
    assert len(PROTOCOL.parse(CREATE, body)["Tags"]) == 200


def test_too_many_values_are_refused_before_parsing():
    entries = ",".join(["{}"] * MAX_JSON_VALUES)
    with pytest.raises(ApiError) as raised:
        PROTOCOL.parse(ASSOCIATE, f'{{"EngineAttributes": [{entries}]}}'.encode())
    assert raised.value.code == "SerializationException" and raised.value.status_code == 400
    assert raised.value.message == f"Request body holds more than {MAX_JSON_VALUES} JSON values"


def _peak_while(call) -> int:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        call()
    except ApiError:
        pass
    peak = tracemalloc.get_traced_memory()[1]
    if started:
        tracemalloc.stop()
    return peak


def test_memory_of_the_huge_body_is_bounded():
    assert 3_700_000 < len(HUGE_BODY) < 3_900_000
    peak = _peak_while(lambda: PROTOCOL.parse(ASSOCIATE, HUGE_BODY))
    assert peak < MAX_PEAK_BYTES, f"parsing a {len(HUGE_BODY)}-byte body peaked at {peak / 1e6:.1f} MB"


def test_errors_beyond_the_reported_ones_are_counted_not_rendered():
    count = MAX_JSON_VALUES // 3  # each bad item is 2 values (object, name)
    body = json.dumps({"ServerName": "s", "NodeName": "n", "EngineAttributes": [{"Name": 1}] * count}).encode()
    with pytest.raises(ApiError) as raised:
        PROTOCOL.parse(ASSOCIATE, body)
    message = raised.value.message
    assert message.startswith(f"{count} validation errors detected: ")
    assert message.endswith(f"; ... ({count - MAX_REPORTED_ERRORS} more)")
    assert message.count("Member must be of type string") == MAX_REPORTED_ERRORS
