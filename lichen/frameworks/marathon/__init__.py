"""`lichen marathon`: a Marathon-compatible service scheduler.

What is where:

- `appdef.py`    app and group definitions: parse, validate (422 details), normalize,
                 partial merge, service ports, and the exact JSON shapes the v2 API emits (pure)
- `paths.py`     app/group id paths, task ids (pure)
- `constraints.py`, `planner.py`, `launch_queue.py`  placement, deployment plans and
                 steps, launch backoff (pure)
- `model.py`     the shared value types: Instance, DeploymentPlan, Action
- `service.py`   the shell: state, persistence, the scheduler link to the master,
                 deployments, events
- `api.py`       the v2 REST API, SSE events, event subscriptions
- `main.py`      `lichen marathon`
"""
