"""The shared fixtures themselves: the `cluster` fixture gives a working cluster."""

from __future__ import annotations

from tests.support import Cluster, http_get_json


def test_cluster_fixture_has_two_registered_agents_with_distinct_ports(cluster: Cluster) -> None:
    slaves = http_get_json(cluster.master.url + "/master/slaves")["slaves"]
    assert sorted(s["port"] for s in slaves) == sorted(a.port for a in cluster.agents)
    assert len({s["resources"]["ports"] for s in slaves}) == 2
    for agent in cluster.agents:
        assert http_get_json(agent.url + "/state")["master_hostname"]
