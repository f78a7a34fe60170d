"""`lichen up`'s pure parts: how it splits the host between agents."""

from __future__ import annotations

import itertools

import pytest

from lichen.cli.up import agent_port_range, restart_delay, split_resources, with_ports
from lichen.resources import Resources


def test_agents_get_disjoint_port_ranges_below_the_ephemeral_ones() -> None:
    ranges = [agent_port_range(i) for i in range(1, 12)]
    assert ranges[0] == (31000, 31999)
    assert ranges[1] == (30000, 30999)
    for (first, _), (_, last) in itertools.pairwise(ranges):
        assert last < first
    assert all(20000 < first and last < 32768 for first, last in ranges)
    with pytest.raises(ValueError, match="at most 11 agents"):
        agent_port_range(12)


def test_port_range_refuses_index_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        agent_port_range(0)


def test_split_divides_the_host_evenly() -> None:
    spec = split_resources(8, 16000, 100000, agents=4, index=2)
    assert spec == "cpus:2;mem:4000;disk:25000;ports:[30000-30999]"


def test_split_rounds_down_and_parses_as_mesos_resources() -> None:
    spec = split_resources(2, 1000, 1000, agents=3, index=3)
    assert spec == "cpus:0.66;mem:333;disk:333;ports:[29000-29999]"
    parsed = Resources.parse(spec)
    assert parsed == Resources.parse("cpus:0.66;mem:333;disk:333;ports:[29000-29999]")


def test_split_never_offers_zero_cpus() -> None:
    assert split_resources(1, 100, 100, agents=200, index=1).startswith("cpus:0.01;")


def test_given_resources_get_the_agents_ports_when_they_name_none() -> None:
    assert with_ports("cpus:1;mem:512", 2) == "cpus:1;mem:512;ports:[30000-30999]"


def test_given_resources_keep_their_own_ports() -> None:
    assert with_ports("cpus:1;ports:[5000-5010]", 2) == "cpus:1;ports:[5000-5010]"


def test_restart_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [restart_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert restart_delay(20) == 30.0
