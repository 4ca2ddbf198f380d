"""Model-driven validation tests.

For every operation, a minimal valid request (required members only) and a maximal
one (every member) are built from the shapes; then, for every member anywhere in the
input shape and every constraint that applies to it (required, type, length, value
range, pattern, enum, list/map size, scalar list items), one violating request is
derived, and the exact AWS-worded entry is expected at the exact path.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.model import ServiceModel, Shape

from opscm.protocol.errors import ApiError
from opscm.protocol.json11 import JsonProtocol
from opscm.protocol.patterns import compile_pattern
from opscm.protocol.validation import (
    MAX_REPORTED_ERRORS,
    MAX_VALUE_CHARS,
    Unfit,
    check_input,
    fit,
    validated_input,
    validation_errors,
    validation_message,
)
from opscm.spec import service_model

MODEL = service_model()
PROTOCOL = JsonProtocol(MODEL)
OPERATIONS = [MODEL.operation_model(name) for name in MODEL.operation_names]

CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"

# Strings tried, in order, for a valid value of a string shape (first that fits wins).
VALID_CANDIDATES = [
    "a",
    "ab",
    "A",
    "abc-1",
    "CHEF_ORGANIZATION",
    "example.com",
    "Mon:08:00",
    "arn:aws:iam::123456789012:role/service-role/opsworks",
    "arn:aws:iam::123456789012:instance-profile/opsworks",
    "arn:aws:opsworks-cm:us-east-1:123456789012:server/s/0123",
    CERT,
    KEY,
    "",
]
UNSAFE_TEXT = "Member must not contain NUL characters or unpaired surrogates"
# Strings tried for a pattern violation (within the length bounds).
INVALID_CANDIDATES = ["a b!", "!", "-", "é", "a\nb", "1", "a", " ", "aa:bb"]


# -- value builders -------------------------------------------------------------------------


def lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def sensitive(shape: Shape, seen: frozenset = frozenset()) -> bool:
    if shape.metadata.get("sensitive"):
        return True
    if shape.name in seen:
        return False
    seen = seen | {shape.name}
    if shape.type_name == "structure":
        return any(sensitive(m, seen) for m in shape.members.values())
    if shape.type_name == "list":
        return sensitive(shape.member, seen)
    if shape.type_name == "map":
        return sensitive(shape.key, seen) or sensitive(shape.value, seen)
    return False


def fits(shape: Shape, value: str) -> bool:
    meta = shape.metadata
    if not meta.get("min", 0) <= len(value) <= meta.get("max", 10**9):
        return False
    if "enum" in meta and value not in meta["enum"]:
        return False
    return "pattern" not in meta or bool(compile_pattern(meta["pattern"]).fullmatch(value))


def valid_keys(shape: Shape, count: int) -> list[str]:
    """*count* distinct valid values of a string shape (map keys)."""
    found: list[str] = []
    for repeat in range(1, count + 2):
        for candidate in VALID_CANDIDATES:
            key = candidate * repeat
            if key not in found and fits(shape, key):
                found.append(key)
            if len(found) == count:
                return found
    raise AssertionError(f"not {count} distinct values for {shape.name}")


def valid_value(shape: Shape, *, full: bool, stack: tuple[str, ...] = ()) -> Any:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "string":
        if "enum" in meta:
            return meta["enum"][0]
        for candidate in VALID_CANDIDATES:
            if fits(shape, candidate):
                return candidate
        raise AssertionError(f"no valid candidate for {shape.name} {meta}; add one to VALID_CANDIDATES")
    if kind in ("integer", "long"):
        return meta.get("min", meta.get("max", 1))
    if kind in ("float", "double"):
        return float(meta.get("min", 1.5))
    if kind == "boolean":
        return True
    if kind == "timestamp":
        return 1700000000
    if kind == "blob":
        return "YWJj"
    if kind == "list":
        count = max(meta.get("min", 0), 1 if full or meta.get("min", 0) else 0)
        return [valid_value(shape.member, full=full, stack=stack) for _ in range(count)]
    if kind == "map":
        count = max(meta.get("min", 0), 1 if full else 0)
        return {key: valid_value(shape.value, full=full, stack=stack) for key in valid_keys(shape.key, count)}
    if kind == "structure":
        if shape.name in stack:
            return {}
        if shape.is_document_type:
            return {"any": ["json"]}
        out = {}
        for name, member in shape.members.items():
            if full or name in shape.required_members:
                wire = member.serialization.get("name", name)
                out[wire] = valid_value(member, full=full, stack=stack + (shape.name,))
        return out
    raise AssertionError(kind)


# -- sites and violations ---------------------------------------------------------------------


@dataclass
class Site:
    """A position in a request: how to reach it in the dict and how AWS names it."""

    steps: tuple  # keys/indexes into the request dict
    path: str  # AWS path of the value at this position
    shape: Shape
    required: bool  # a required structure member
    scalar_item_of: Any = None  # (container shape, container path) for a scalar list item / map value


def sites(shape: Shape, value: Any, steps: tuple = (), path: str = "") -> list[Site]:
    out: list[Site] = []
    if shape.type_name == "structure" and not shape.is_document_type:
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if wire not in value or member.metadata.get("document"):
                continue
            sub_path = f"{path}.{lower_camel(name)}" if path else lower_camel(name)
            out.append(Site(steps + (wire,), sub_path, member, name in shape.required_members))
            out += sites(member, value[wire], steps + (wire,), sub_path)
    elif shape.type_name == "list" and value:
        item_path = f"{path}.1.member"
        if shape.member.type_name in ("structure", "list", "map"):
            out.append(Site(steps + (0,), item_path, shape.member, False))
            out += sites(shape.member, value[0], steps + (0,), item_path)
        else:
            out.append(Site(steps + (0,), item_path, shape.member, False, (shape, path)))
    elif shape.type_name == "map" and value:
        key = next(iter(value))
        if shape.value.type_name in ("structure", "list", "map"):
            out.append(Site(steps + (key,), f"{path}.{key}.member", shape.value, False))
            out += sites(shape.value, value[key], steps + (key,), f"{path}.{key}.member")
        else:
            out.append(Site(steps + (key,), path, shape.value, False, (shape, path)))
    return out


def render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={render(v)}" for k, v in value.items()) + "}"
    return str(value)


def entry(shape: Shape, value: Any, path: str, constraint: str) -> str:
    if value is None:
        shown = "Value null"
    elif sensitive(shape):
        shown = "Value"
    else:
        text = render(value)
        shown = f"Value '{text[:MAX_VALUE_CHARS] + '...' if len(text) > MAX_VALUE_CHARS else text}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {constraint}"


def constraint_texts(shape: Shape) -> list[str]:
    meta = shape.metadata
    texts = []
    kind = "value" if shape.type_name in ("integer", "long", "float", "double") else "length"
    if "max" in meta:
        texts.append(f"Member must have {kind} less than or equal to {meta['max']}")
    if "min" in meta:
        texts.append(f"Member must have {kind} greater than or equal to {meta['min']}")
    if "pattern" in meta:
        texts.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    if "enum" in meta:
        texts.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
    return texts


def extend(shape: Shape, value: str, length: int) -> str:
    """*value* grown to *length*, keeping it valid otherwise when possible."""
    for filler in (value[-1:] or "a", "a", " ", "0"):
        grown = value + filler * (length - len(value))
        if "pattern" not in shape.metadata or compile_pattern(shape.metadata["pattern"]).fullmatch(grown):
            return grown
    return value + "a" * (length - len(value))


WRONG_TYPES = {
    "string": [123, True, ["x"]],
    "integer": ["1", True, 1.5, 2**31, {}],
    "long": ["1", False, 2**63],
    "boolean": ["true", 1, "false"],
    "timestamp": [True, "not a date", [1]],
    "list": [{}, "x", 1],
    "map": [[], "x"],
    "structure": [[], "x", 7],
    "blob": [1, "not base64!"],
    "float": [True, "x"],
    "double": [True, "x"],
}


@dataclass
class Case:
    id: str
    operation: str
    request: dict
    expected: str
    exclusive: bool  # the only entry expected


def violations(operation_name: str, shape: Shape, request: dict) -> list[Case]:
    return [case for site in sites(shape, request) for case in site_violations(operation_name, request, site)]


def site_violations(operation_name: str, request: dict, site: Site) -> list[Case]:
    """The violating requests for one site of a valid *request*."""
    cases: list[Case] = []

    def make(value: Any, *, delete: bool = False) -> dict:
        mutated = copy.deepcopy(request)
        parent = mutated
        for step in site.steps[:-1]:
            parent = parent[step]
        if delete:
            del parent[site.steps[-1]]
        else:
            parent[site.steps[-1]] = value
        return mutated

    def add(label: str, value: Any, constraint: str, *, exclusive: bool = True, delete: bool = False) -> None:
        mutated = make(value, delete=delete)
        if site.scalar_item_of:
            container_shape, container_path = site.scalar_item_of
            container = mutated
            for step in site.steps[:-1]:
                container = container[step]
            aggregated = "Member" if container_shape.type_name == "list" else "Map value"
            texts = constraint_texts(site.shape)
            expected = entry(
                container_shape,
                container,
                container_path,
                f"{aggregated} must satisfy constraint: [{', '.join(texts)}]",
            )
        else:
            expected = entry(site.shape, None if delete else value, site.path, constraint)
        cases.append(Case(f"{operation_name}:{site.path}:{label}", operation_name, mutated, expected, exclusive))

    meta = site.shape.metadata
    kind = site.shape.type_name
    if site.required:
        add("required-missing", None, "Member must not be null", delete=True)
        add("required-null", None, "Member must not be null")
    for index, wrong in enumerate(WRONG_TYPES[kind]):
        if site.scalar_item_of:
            container_shape, container_path = site.scalar_item_of
            sep = ".1.member" if container_shape.type_name == "list" else f".{site.steps[-1]}.member"
            mutated = make(wrong)
            expected = entry(site.shape, wrong, container_path + sep, f"Member must be of type {kind}")
            cases.append(Case(f"{operation_name}:{site.path}:type{index}", operation_name, mutated, expected, True))
        else:
            add(f"type{index}", wrong, f"Member must be of type {kind}")
    if kind == "string":
        valid = valid_value(site.shape, full=True)
        unsafe_values = {"nul": valid[:1] + "\x00", "surrogate": "\ud800" + valid[1:], "low-surrogate": "\udfff"}
        for label, unsafe in unsafe_values.items():
            # Refused wherever the string is, its value never shown, its other constraints not checked.
            item_path = site.path
            if site.scalar_item_of:
                container_shape, container_path = site.scalar_item_of
                sep = ".1.member" if container_shape.type_name == "list" else f".{site.steps[-1]}.member"
                item_path = container_path + sep
            expected = f"Value at '{item_path}' failed to satisfy constraint: {UNSAFE_TEXT}"
            cases.append(Case(f"{operation_name}:{site.path}:{label}", operation_name, make(unsafe), expected, True))
        if meta.get("min", 0) > 0:
            add(
                "min-length",
                valid[: meta["min"] - 1],
                f"Member must have length greater than or equal to {meta['min']}",
                exclusive=False,
            )
        if "max" in meta:
            add(
                "max-length",
                extend(site.shape, valid, meta["max"] + 1),
                f"Member must have length less than or equal to {meta['max']}",
                exclusive=False,
            )
        if "pattern" in meta:
            pattern = compile_pattern(meta["pattern"])
            bad = [
                c
                for c in INVALID_CANDIDATES
                if meta.get("min", 0) <= len(c) <= meta.get("max", 10**9) and not pattern.fullmatch(c)
            ]
            if bad:
                add("pattern", bad[0], f"Member must satisfy regular expression pattern: {meta['pattern']}")
            else:
                # Only patterns that accept everything have no counter-example.
                assert pattern.fullmatch("a b!\n\r\x00é\u2028"), meta["pattern"]
        if "enum" in meta:
            add("enum", "NOT_A_VALUE", f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
    if kind in ("integer", "long"):
        if "min" in meta:
            add("min-value", meta["min"] - 1, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta:
            add("max-value", meta["max"] + 1, f"Member must have value less than or equal to {meta['max']}")
    if kind in ("list", "map"):
        item = valid_value(site.shape.member if kind == "list" else site.shape.value, full=False)

        def sized(n: int) -> Any:
            if kind == "list":
                return [copy.deepcopy(item) for _ in range(n)]
            return {key: copy.deepcopy(item) for key in valid_keys(site.shape.key, n)}

        if meta.get("min", 0) > 0:
            add("min-size", sized(meta["min"] - 1), f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta:
            add("max-size", sized(meta["max"] + 1), f"Member must have length less than or equal to {meta['max']}")
        if kind == "list" and site.shape.member.type_name == "structure":
            # A null item of a list of structures.
            cases.append(
                Case(
                    f"{operation_name}:{site.path}:null-item",
                    operation_name,
                    make([None] + [copy.deepcopy(item) for _ in range(max(meta.get("min", 0), 1) - 1)]),
                    entry(site.shape.member, None, f"{site.path}.1.member", "Member must not be null"),
                    True,
                )
            )
    return cases


# -- generic shapes the opsworkscm model does not use ---------------------------------------------

SYNTHETIC = ServiceModel(
    {
        "metadata": {
            "protocol": "json",
            "apiVersion": "2020-01-01",
            "jsonVersion": "1.1",
            "targetPrefix": "Synth",
            "endpointPrefix": "synth",
            "serviceId": "Synth",
            "signatureVersion": "v4",
        },
        "operations": {
            "Op": {
                "name": "Op",
                "http": {"method": "POST", "requestUri": "/"},
                "input": {"shape": "In"},
                "output": {"shape": "Out"},
            }
        },
        "shapes": {
            "In": {
                "type": "structure",
                "members": {
                    "When": {"shape": "Stamp"},
                    "Data": {"shape": "Bytes"},
                    "Ratio": {"shape": "Ratio"},
                    "Big": {"shape": "Big"},
                    "Labels": {"shape": "Labels"},
                    "Nested": {"shape": "NestedMap"},
                    "Doc": {"shape": "Doc"},
                    "Renamed": {"shape": "Name", "locationName": "wire_name"},
                    "Secret": {"shape": "SecretMap"},
                    "Kind": {"shape": "Kind"},
                    "Counts": {"shape": "Counts"},
                    "Items": {"shape": "Items"},
                },
            },
            "Out": {"type": "structure", "members": {}},
            "Stamp": {"type": "timestamp"},
            "Bytes": {"type": "blob", "max": 3},
            "Ratio": {"type": "double", "min": 0, "max": 1},
            "Big": {"type": "long", "max": 10000000000},
            "Name": {"type": "string", "min": 2, "pattern": "[a-z]+"},
            "Labels": {"type": "map", "key": {"shape": "Name"}, "value": {"shape": "Short"}, "max": 2},
            "Short": {"type": "string", "max": 3},
            "NestedMap": {"type": "map", "key": {"shape": "Short"}, "value": {"shape": "Item"}},
            "Item": {"type": "structure", "required": ["Count"], "members": {"Count": {"shape": "Count"}}},
            "Count": {"type": "integer", "min": 1, "max": 5},
            "Doc": {"type": "structure", "members": {}, "document": True},
            "SecretMap": {"type": "map", "key": {"shape": "Short"}, "value": {"shape": "SecretValue"}},
            "SecretValue": {"type": "string", "max": 2, "sensitive": True},
            "Kind": {"type": "string", "enum": ["ONE", "TWO"]},
            "Counts": {"type": "list", "member": {"shape": "Count"}, "min": 1, "max": 3},
            "Items": {"type": "list", "member": {"shape": "Item"}, "min": 2},
        },
    },
    service_name="synth",
)
SYN_OP = SYNTHETIC.operation_model("Op")


SYN_PROTOCOL = JsonProtocol(SYNTHETIC)
ALL_OPERATIONS = OPERATIONS + [SYN_OP]
PROTOCOLS = {**{op.name: PROTOCOL for op in OPERATIONS}, "Op": SYN_PROTOCOL}
MINIMAL = {op.name: valid_value(op.input_shape, full=False) for op in ALL_OPERATIONS}
MAXIMAL = {op.name: valid_value(op.input_shape, full=True) for op in ALL_OPERATIONS}
CASES = [case for op in ALL_OPERATIONS for case in violations(op.name, op.input_shape, MAXIMAL[op.name])]
BY_NAME = {op.name: op for op in ALL_OPERATIONS}


def test_the_generated_suite_covers_every_constraint_kind():
    kinds = {case.id.rsplit(":", 1)[1].rstrip("0123456789") for case in CASES}
    assert {
        "required-missing",
        "required-null",
        "type",
        "min-length",
        "max-length",
        "pattern",
        "enum",
        "min-value",
        "max-size",
        "null-item",
    } <= kinds
    assert len(CASES) > 300
    assert {case.operation for case in CASES} == set(MODEL.operation_names) - {"DescribeAccountAttributes"} | {"Op"}
    opsworkscm_kinds = {case.id.rsplit(":", 1)[1].rstrip("0123456789") for case in CASES if case.operation != "Op"}
    assert {
        "required-missing",
        "required-null",
        "type",
        "min-length",
        "max-length",
        "pattern",
        "min-value",
        "max-size",
        "null-item",
        "nul",
        "surrogate",
    } <= opsworkscm_kinds


@pytest.mark.parametrize("operation_name", sorted(BY_NAME))
def test_minimal_and_maximal_valid_requests_pass(operation_name):
    operation = BY_NAME[operation_name]
    for request in (MINIMAL[operation_name], MAXIMAL[operation_name]):
        assert validation_errors(operation.input_shape, request) == []
        check_input(operation, request)
        parsed = PROTOCOLS[operation_name].parse(operation, json.dumps(request).encode())
        if operation_name != "Op":
            # Every member is kept as sent (no timestamps, blobs or renamed members here).
            assert parsed == request


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_each_violation_is_reported_at_its_path(case):
    operation = BY_NAME[case.operation]
    errors = validation_errors(operation.input_shape, case.request)
    assert case.expected in errors
    if case.exclusive:
        assert errors == [case.expected]
    path = case.expected.split(" at '", 1)[1].split("'", 1)[0]
    assert all(f" at '{path}" in error for error in errors), errors
    with pytest.raises(ApiError) as raised:
        PROTOCOLS[case.operation].parse(operation, json.dumps(case.request).encode())
    assert raised.value.code == "ValidationException"
    assert raised.value.status_code == 400 and raised.value.sender_fault
    noun = "validation error" if len(errors) == 1 else "validation errors"
    assert raised.value.message == f"{len(errors)} {noun} detected: " + "; ".join(errors)


def test_the_fast_check_refuses_every_violation_the_walk_reports():
    """A request the fast check passes is never walked: it must refuse whatever the walk would
    report, for every generated violation of every operation."""
    for case in CASES:
        with pytest.raises(Unfit):
            fit(BY_NAME[case.operation].input_shape, case.request)
    for name, operation in BY_NAME.items():
        for request in (MINIMAL[name], MAXIMAL[name]):
            cleaned = fit(operation.input_shape, request)
            if name != "Op":  # the synthetic one's timestamps and blobs are cleaned (see below)
                assert cleaned == request


# -- hand-written expectations (the AWS wording, literally) --------------------------------------


def op(name):
    return BY_NAME[name]


def message_of(operation_name: str, params: dict) -> str:
    with pytest.raises(ApiError) as raised:
        check_input(op(operation_name), params)
    assert raised.value.code == "ValidationException"
    return raised.value.message


def test_aws_wording_single_pattern_error():
    params = {"ServerName": "s", "NodeName": "a b", "EngineAttributes": []}
    assert message_of("AssociateNode", params) == (
        "1 validation error detected: Value 'a b' at 'nodeName' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: ^[\-\p{Alnum}_:.]+$"
    )


def test_aws_wording_several_errors_in_model_order():
    assert message_of("AssociateNode", {"NodeName": "é", "ServerName": "x" * 41}) == (
        "3 validation errors detected: "
        f"Value '{'x' * 41}' at 'serverName' failed to satisfy constraint: Member must have length less than or equal to 40; "
        "Value 'é' at 'nodeName' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: ^[\-\p{Alnum}_:.]+$; "
        "Value null at 'engineAttributes' failed to satisfy constraint: Member must not be null"
    )


def test_aws_wording_enum_and_integer():
    assert validation_errors(op("DescribeServers").input_shape, {"MaxResults": 0}) == [
        "Value '0' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
    ]
    shape = MODEL.shape_for("BackupType")
    assert validation_errors(shape, "WEEKLY", path="backupType") == [
        "Value 'WEEKLY' at 'backupType' failed to satisfy constraint: Member must satisfy enum value set: [AUTOMATED, MANUAL]"
    ]


def test_engine_attribute_paths_and_sensitive_values_are_hidden():
    params = {
        "ServerName": "s",
        "NodeName": "n",
        "EngineAttributes": [{"Name": "A", "Value": "ok"}, {"Name": "B", "Value": "x" * 10001}],
    }
    assert validation_errors(op("AssociateNode").input_shape, params) == [
        "Value at 'engineAttributes.2.member.value' failed to satisfy constraint: "
        "Member must have length less than or equal to 10000"
    ]
    key_params = {
        "Engine": "ChefAutomate",
        "ServerName": "s",
        "InstanceProfileArn": "arn:aws:iam::123456789012:instance-profile/p",
        "InstanceType": "m5.large",
        "ServiceRoleArn": "arn:aws:iam::123456789012:role/r",
        "CustomPrivateKey": "not a key, but secret",
    }
    errors = validation_errors(op("CreateServer").input_shape, key_params)
    assert errors == [
        "Value at 'customPrivateKey' failed to satisfy constraint: Member must satisfy regular expression pattern: "
        r"(?ms)\s*^-----BEGIN (?-s:.*)PRIVATE KEY-----$.*?^-----END (?-s:.*)PRIVATE KEY-----$\s*"
    ]
    assert "secret" not in message_of("CreateServer", key_params)


def test_scalar_list_items_are_reported_once_for_the_list():
    params = {
        "ResourceArn": "arn:aws:opsworks-cm:us-east-1:123456789012:server/s/1",
        "TagKeys": ["ok", "bad!", "", "also bad?"],
    }
    assert validation_errors(op("UntagResource").input_shape, params) == [
        "Value '[ok, bad!, , also bad?]' at 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must have length less than or equal to 128, Member must have length greater than or equal to 1, "
        r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$]"
    ]
    params["TagKeys"] = ["ok", None]
    assert validation_errors(op("UntagResource").input_shape, params)[0].endswith(", Member must not be null]")


def test_tags_structure_items():
    params = {
        "ResourceArn": "arn:aws:opsworks-cm:us-east-1:123456789012:server/s/1",
        "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "bad!"}],
    }
    assert validation_errors(op("TagResource").input_shape, params) == [
        "Value 'bad!' at 'tags.2.member.key' failed to satisfy constraint: "
        r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
        "Value null at 'tags.2.member.value' failed to satisfy constraint: Member must not be null",
    ]


def test_unicode_tag_keys_are_letters():
    params = {
        "ResourceArn": "arn:aws:opsworks-cm:us-east-1:123456789012:server/s/1",
        "Tags": [{"Key": "Ümlaut 日本", "Value": "wert"}],
    }
    assert validation_errors(op("TagResource").input_shape, params) == []


def test_type_errors():
    shape = op("DescribeServers").input_shape
    assert validation_errors(shape, {"MaxResults": True}) == [
        "Value 'true' at 'maxResults' failed to satisfy constraint: Member must be of type integer"
    ]
    assert validation_errors(shape, {"MaxResults": 2.0}) == [
        "Value '2.0' at 'maxResults' failed to satisfy constraint: Member must be of type integer"
    ]
    assert validation_errors(shape, {"ServerName": False}) == [
        "Value 'false' at 'serverName' failed to satisfy constraint: Member must be of type string"
    ]
    assert validation_errors(
        op("UntagResource").input_shape, {"ResourceArn": "arn:aws:opsworks-cm:x:123456789012:y", "TagKeys": {"a": 1}}
    ) == ["Value '{a=1}' at 'tagKeys' failed to satisfy constraint: Member must be of type list"]
    assert validation_errors(shape, []) == [
        "Value '[]' at '' failed to satisfy constraint: Member must be of type structure"
    ]


def test_unknown_members_are_ignored_and_dropped():
    params = {
        "ServerName": "s",
        "NodeName": "n",
        "Extra": {"deep": [1]},
        "EngineAttributes": [{"Name": "CHEF_ORGANIZATION", "Value": "default", "Other": 1}],
    }
    assert validation_errors(op("AssociateNode").input_shape, params) == []
    assert validated_input(op("AssociateNode"), params) == {
        "ServerName": "s",
        "NodeName": "n",
        "EngineAttributes": [{"Name": "CHEF_ORGANIZATION", "Value": "default"}],
    }


def test_null_optional_members_are_absent():
    assert validated_input(op("DescribeServers"), {"ServerName": None, "MaxResults": None}) == {}


def test_long_values_are_truncated_in_messages():
    errors = validation_errors(op("DescribeServers").input_shape, {"ServerName": "x" * 5000})
    assert errors == [
        f"Value '{'x' * MAX_VALUE_CHARS}...' at 'serverName' failed to satisfy constraint: "
        "Member must have length less than or equal to 40"
    ]
    huge = validation_errors(
        op("UntagResource").input_shape,
        {"ResourceArn": "arn:aws:opsworks-cm:x:123456789012:y", "TagKeys": ["!" * 1000] * 100},
    )
    assert len(huge) == 1 and len(huge[0]) < 1000


def test_message_caps_the_listed_entries():
    errors = [f"e{i}" for i in range(MAX_REPORTED_ERRORS + 5)]
    message = validation_message(errors)
    assert message.startswith(f"{MAX_REPORTED_ERRORS + 5} validation errors detected: e0; e1")
    assert message.endswith("; ... (5 more)")
    assert validation_message(["only"]) == "1 validation error detected: only"


def test_operation_without_input_members():
    assert validated_input(op("DescribeAccountAttributes"), {"Anything": 1}) == {}


def syn_errors(params):
    return validation_errors(SYN_OP.input_shape, params)


def test_generic_timestamps_blobs_numbers_and_documents():
    cleaned = validated_input(
        SYN_OP,
        {
            "When": "2024-01-02T03:04:05Z",
            "Data": "YWJj",
            "Ratio": 0.5,
            "Big": 2**33,
            "Doc": {"any": [1, None]},
            "wire_name": "ab",
        },
    )
    assert cleaned["When"].isoformat() == "2024-01-02T03:04:05+00:00"
    assert cleaned["Data"] == b"abc" and cleaned["Ratio"] == 0.5 and cleaned["Big"] == 2**33
    assert cleaned["Doc"] == {"any": [1, None]} and cleaned["Renamed"] == "ab"
    assert validated_input(SYN_OP, {"When": 1700000000.5})["When"].timestamp() == 1700000000.5
    assert validated_input(SYN_OP, {"When": "2024-01-02T03:04:05"})["When"].tzinfo is not None
    assert syn_errors({"When": "yesterday"}) == [
        "Value 'yesterday' at 'when' failed to satisfy constraint: Member must be of type timestamp"
    ]
    assert syn_errors({"When": 1e300}) == [
        "Value '1e+300' at 'when' failed to satisfy constraint: Member must be of type timestamp"
    ]
    assert syn_errors({"Data": "YWJjZA=="}) == [
        "Value 'YWJjZA==' at 'data' failed to satisfy constraint: Member must have length less than or equal to 3"
    ]
    assert syn_errors({"Data": "%%%"}) == [
        "Value '%%%' at 'data' failed to satisfy constraint: Member must be of type blob"
    ]
    assert syn_errors({"Ratio": 1.5, "Big": 10000000001}) == [
        "Value '1.5' at 'ratio' failed to satisfy constraint: Member must have value less than or equal to 1",
        "Value '10000000001' at 'big' failed to satisfy constraint: Member must have value less than or equal to 10000000000",
    ]
    assert syn_errors({"Ratio": "NaN"}) == []
    assert syn_errors({"Big": 2**63}) == [
        f"Value '{2**63}' at 'big' failed to satisfy constraint: Member must be of type long"
    ]
    assert syn_errors({"wire_name": "A"}) == [
        "Value 'A' at 'renamed' failed to satisfy constraint: Member must have length greater than or equal to 2",
        "Value 'A' at 'renamed' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-z]+",
    ]


def test_generic_maps():
    assert syn_errors({"Labels": {"ok": "v", "BAD": "v"}}) == [
        "Value '{ok=v, BAD=v}' at 'labels' failed to satisfy constraint: Map keys must satisfy constraint: "
        "[Member must have length greater than or equal to 2, Member must satisfy regular expression pattern: [a-z]+]"
    ]
    assert syn_errors({"Labels": {"ok": "long", "fine": None}}) == [
        "Value '{ok=long, fine=null}' at 'labels' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 3, Member must not be null]"
    ]
    assert syn_errors({"Labels": {"aa": "1", "bb": "2", "cc": "3"}}) == [
        "Value '{aa=1, bb=2, cc=3}' at 'labels' failed to satisfy constraint: Member must have length less than or equal to 2"
    ]
    assert syn_errors({"Labels": {"aa": 1}}) == [
        "Value '1' at 'labels.aa.member' failed to satisfy constraint: Member must be of type string"
    ]
    assert syn_errors({"Nested": {"k": {"Count": 9}, "j": {}, "n": None}}) == [
        "Value '9' at 'nested.k.member.count' failed to satisfy constraint: Member must have value less than or equal to 5",
        "Value null at 'nested.j.member.count' failed to satisfy constraint: Member must not be null",
        "Value null at 'nested.n.member' failed to satisfy constraint: Member must not be null",
    ]
    assert syn_errors({"Secret": {"k": "top secret"}}) == [
        "Value at 'secret' failed to satisfy constraint: Map value must satisfy constraint: "
        "[Member must have length less than or equal to 2]"
    ]
    assert validated_input(SYN_OP, {"Nested": {"k": {"Count": 2, "x": 1}}})["Nested"] == {"k": {"Count": 2}}


def test_unsafe_text_is_never_echoed():
    assert syn_errors({"Labels": {"a\x00": "v", "bb": "\ud800"}, "Nested": {"\udc00": {"Count": 9}}}) == [
        f"Value at 'labels.a\ufffd.member' failed to satisfy constraint: {UNSAFE_TEXT}",
        f"Value at 'labels.bb.member' failed to satisfy constraint: {UNSAFE_TEXT}",
        f"Value at 'nested.\ufffd.member' failed to satisfy constraint: {UNSAFE_TEXT}",
        "Value '9' at 'nested.\ufffd.member.count' failed to satisfy constraint: Member must have value less than or equal to 5",
    ]
    # Nor inside a value of the wrong type.
    assert validation_errors(op("DescribeServers").input_shape, {"ServerName": ["\x00", "\ud800"]}) == [
        "Value '[\ufffd, \ufffd]' at 'serverName' failed to satisfy constraint: Member must be of type string"
    ]


def test_null_top_level_value():
    assert validation_errors(MODEL.shape_for("ServerName"), None, path="serverName") == [
        "Value null at 'serverName' failed to satisfy constraint: Member must not be null"
    ]
