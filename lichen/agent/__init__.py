"""The agent: advertises a machine's resources, runs tasks, reports their statuses."""
