"""The whole application, driven by the model: every constraint violation of every operation is a
ValidationException, and no body, however odd, gets a 500."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opscm import spec
from opscm.mock import OpsWorksCMMock
from tests.support.in_process import assert_never_a_500, call
from tests.unit.test_protocol_validation import CASES, MINIMAL

OPERATIONS = spec.service_model().operation_names
# The protocol suite also covers a synthetic model; here only the real operations count.
APP_CASES = [case for case in CASES if case.operation in OPERATIONS]


@pytest.fixture(scope="module")
def app():
    with OpsWorksCMMock(run_jobs=False) as mock:
        yield mock.app


@pytest.mark.parametrize("case", APP_CASES, ids=[case.id for case in APP_CASES])
def test_every_violation_is_a_validation_exception(app, case):
    status, body = call(app, case.operation, json.dumps(case.request).encode())
    assert status == 400
    assert body["__type"] == "ValidationException"
    assert case.expected in body["message"]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_minimal_valid_requests_never_fail_inside(app, operation):
    status, body = call(app, operation, json.dumps(MINIMAL[operation]).encode())
    assert status != 500, body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _member_objects(operation):
    members = list(spec.service_model().operation_model(operation).input_shape.members)
    return st.dictionaries(st.sampled_from(members) if members else st.text(max_size=5), json_values, max_size=6)


@pytest.mark.parametrize("operation", OPERATIONS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_junk_never_gets_a_500(app, operation, data):
    body = data.draw(
        st.one_of(
            st.binary(max_size=64),
            json_values.map(lambda v: json.dumps(v).encode()),
            _member_objects(operation).map(lambda v: json.dumps(v).encode()),
        )
    )
    assert_never_a_500(*call(app, operation, body))
