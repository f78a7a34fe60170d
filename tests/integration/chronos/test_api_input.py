"""Bad input never gets a 500: any JSON posted as a job is a 204 or a 400 with a message,
and whatever was accepted lists back as valid JSON."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lichen.frameworks.chronos import job as jobs
from tests.integration.chronos.fake_service import ServedFake
from tests.integration.chronos.helpers import call

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8),
    st.sampled_from(["R//PT1S", "R5/2030-01-01T00:00:00Z/P1M", "0.5", "DOCKER", "EQUALS", "PT30S"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=6)
_keys = st.sampled_from([*jobs.JOB_KEYS, "schedule", "scheduleTimeZone", "parents", "container", "dataJob"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(_keys, _values, max_size=4))
def test_any_posted_job_is_204_or_400(served: ServedFake, fields: dict[str, Any]) -> None:
    body = {"name": "fuzz", "command": "true", **fields}
    r = call(served, "POST", "/v1/scheduler/iso8601", json.dumps(body))
    assert r.status_code in (204, 400), (r.status_code, r.text, body)
    if r.status_code == 400:
        assert r.json()["status"] == "Bad Request" and r.json()["message"]
    listed = call(served, "GET", "/v1/scheduler/jobs")
    assert listed.status_code == 200
    json.loads(listed.text)   # strict enough: Python's parser, what the clients use
