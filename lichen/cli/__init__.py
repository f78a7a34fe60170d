"""The `lichen` command: daemons (`master`, `agent`, `up`), benchmarks and client verbs."""
