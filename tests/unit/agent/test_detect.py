from __future__ import annotations

import pytest

from lichen.agent.detect import (
    attributes_state_json,
    default_disk,
    default_mem,
    named_resources,
    parse_attributes,
    resource_text,
)
from lichen.errors import InvalidRequest
from lichen.resources import Resources


def test_mem_keeps_a_gigabyte_of_headroom_but_at_least_half() -> None:
    assert default_mem(16384) == 15360
    assert default_mem(1500) == 750


def test_disk_keeps_headroom_but_at_least_half() -> None:
    assert default_disk(100_000) == 100_000 - 5120
    assert default_disk(6000) == 3000


def test_missing_resources_are_filled_in() -> None:
    text = resource_text("cpus:3;gpus:1", cpus=8, mem_total_mb=4096, disk_free_mb=20480)
    r = Resources.parse(text)
    assert r.scalar("cpus") == 3
    assert r.scalar("gpus") == 1
    assert r.scalar("mem") == 3072
    assert r.scalar("disk") == 15360
    assert r.ranges("ports") == [(31000, 32000)]


def test_named_resources_sees_roles_and_ranges() -> None:
    assert named_resources("cpus(ops):2;ports:[1-2,5-6];mem:10") == {"cpus", "ports", "mem"}


def test_attributes_parse_text_scalar_and_ranges() -> None:
    attrs = parse_attributes("rack:a;zone:1;level:2.5;span:[1-3,7-9]")
    assert attrs == [
        {"name": "rack", "type": "TEXT", "text": {"value": "a"}},
        {"name": "zone", "type": "SCALAR", "scalar": {"value": 1.0}},
        {"name": "level", "type": "SCALAR", "scalar": {"value": 2.5}},
        {"name": "span", "type": "RANGES", "ranges": {"range": [{"begin": 1, "end": 3}, {"begin": 7, "end": 9}]}},
    ]
    assert attributes_state_json(attrs) == {"rack": "a", "zone": 1.0, "level": 2.5, "span": "[1-3, 7-9]"}


def test_attribute_without_value_is_invalid() -> None:
    with pytest.raises(InvalidRequest):
        parse_attributes("rack")
