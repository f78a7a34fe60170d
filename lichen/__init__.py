"""lichen: the Mesosphere datacenter stack in Python.

Packages: ``master`` (Mesos master), ``agent`` (Mesos agent), ``state`` (stores),
``api`` (HTTP plumbing shared by every daemon), ``cli`` (the ``lichen`` command),
``bench`` (benchmarks run by ``lichen bench``).
"""

__version__ = "0.1.0"

# The Mesos API version lichen speaks. pymesos calls int() on each part of it.
MESOS_VERSION = "1.11.0"
