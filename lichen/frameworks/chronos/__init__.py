"""`lichen chronos`: a Chronos-compatible job scheduler.

What is where:

- `schedule.py`  ISO 8601 repeating schedules: parse, advance, missed runs (pure)
- `graph.py`     the dependency graph: edge counters, cycles, dot/csv (pure)
- `job.py`       the Job JSON: validate (400 naming the field), defaults, output shape,
                 task ids and task environment (pure)
- `service.py`   the shell: jobs, runs, retries, history, persistence, the scheduler link
- `api.py`       the REST API under /v1/scheduler and /scheduler
- `main.py`      `lichen chronos`
"""
