"""The master's small pure helpers: flag parsing, filters, uuids, MasterInfo.ip."""

from __future__ import annotations

import base64
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.errors import InvalidRequest
from lichen.master.flags import parse_weights
from lichen.master.master import (
    MAX_REFUSE_SECONDS,
    decode_uuid,
    ip_to_uint32,
    refuse_seconds,
    validate_framework_info,
    validate_role,
)


def test_weights_parse_roles_and_values() -> None:
    assert parse_weights("ops=2,batch=1") == {"ops": 2.0, "batch": 1.0}
    assert parse_weights("") == {}


@pytest.mark.parametrize("text", ["ops", "ops=", "=2", "ops=x", "ops=0", "ops=-1"])
def test_bad_weights_are_refused_naming_the_part(text: str) -> None:
    with pytest.raises(ValueError, match="bad weight"):
        parse_weights(text)


def test_refuse_seconds_default_and_caps() -> None:
    assert refuse_seconds(None) == 5.0
    assert refuse_seconds({}) == 5.0
    assert refuse_seconds({"refuse_seconds": 30}) == 30.0
    # pymesos may send 4294967295: capped at a year, as Mesos.
    assert refuse_seconds({"refuse_seconds": 4294967295}) == MAX_REFUSE_SECONDS
    assert refuse_seconds({"refuse_seconds": -3}) == 0.0
    with pytest.raises(InvalidRequest):
        refuse_seconds({"refuse_seconds": "soon"})


@given(st.binary(min_size=16, max_size=16))
def test_any_16_byte_uuid_is_accepted_plain_or_wrapped(raw: bytes) -> None:
    b64 = base64.b64encode(raw).decode()
    assert decode_uuid(b64) == b64
    assert decode_uuid({"value": b64}) == b64  # pymesos's OperationStatus form


@pytest.mark.parametrize("bad", ["", "not base64!", base64.b64encode(b"short").decode(), 5, None])
def test_bad_uuids_are_invalid_requests(bad: object) -> None:
    with pytest.raises(InvalidRequest, match="uuid"):
        decode_uuid(bad)


def test_master_info_ip_is_network_order_read_little_endian() -> None:
    assert ip_to_uint32("10.0.0.1") == 16777226
    assert ip_to_uint32("127.0.0.1") == 16777343
    assert decode_uuid(base64.b64encode(uuid.uuid4().bytes).decode())


@pytest.mark.parametrize("role", ["*", "ops", "team/ops", "a.b", "x_y-z"])
def test_valid_roles(role: str) -> None:
    validate_role(role)


@pytest.mark.parametrize("role", ["", ".", "..", "-ops", "/ops", "ops/", "a//b", "a b", "a/../b", 7])
def test_invalid_roles(role: object) -> None:
    with pytest.raises(InvalidRequest, match="role"):
        validate_role(role)


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"name": "n"}, "user"),
        ({"user": "u"}, "name"),
        ({"user": "u", "name": "n", "capabilities": "MULTI_ROLE"}, "capabilities"),
        ({"user": "u", "name": "n", "failover_timeout": "1d"}, "failover_timeout"),
        ({"user": "u", "name": "n", "checkpoint": "yes"}, "checkpoint"),
        ({"user": "u", "name": "n", "roles": ["a"]}, "roles"),
        ({"user": "u", "name": "n", "role": "a", "capabilities": [{"type": "MULTI_ROLE"}]}, "role"),
        ({"user": "u", "name": "n", "roles": ["a", "a"], "capabilities": [{"type": "MULTI_ROLE"}]}, "roles"),
        ({"user": "u", "name": "n", "id": {"value": ""}}, "framework_info.id"),
    ],
)
def test_invalid_framework_info_names_the_field(info: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidRequest, match=field):
        validate_framework_info(info)  # type: ignore[arg-type]


def test_valid_framework_infos() -> None:
    validate_framework_info({"user": "u", "name": "n", "failover_timeout": 100, "checkpoint": True})
    validate_framework_info({"user": "u", "name": "n", "roles": ["a", "b/c"],
                             "capabilities": [{"type": "MULTI_ROLE"}]})
