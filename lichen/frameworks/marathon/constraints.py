"""Placement constraints: `[field, OPERATOR, value?]` (Marathon's `constraints`).

A constraint names a *field* of the agent and an operator over its value:

- `hostname` / `@hostname`: the agent's hostname; `@region` / `@zone`: its fault domain;
  anything else: an agent attribute, compared as text (scalars `"3"`, ranges `"[1-2]"`,
  sets `"{a,b}"`, as `AgentView.attributes` renders them).
- An agent that lacks the field passes only UNLIKE.

Operators (`satisfies` decides whether one more instance may go on an agent, given the
agents the app's live instances are on):

- UNIQUE: at most one instance per distinct value.
- CLUSTER value: only agents with that value. CLUSTER without value: the first
  placement pins the value; the others must share it.
- GROUP_BY [count]: spread evenly over the values. A value not used yet always passes;
  a used value passes only when its count is the minimum among used values and, with an
  expected group count, when at least that many values are in use (unused groups count
  as 0 until then).
- LIKE / UNLIKE regex: the value fully matches / does not fully match.
- MAX_PER n: at most n instances per value.
- IS value: equality; numbers are compared to 3 decimals (`"3"` IS `"3.000"`).

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

OPERATORS = ("UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS")

# Which operators need / may take a value. UNIQUE takes none (Marathon refuses one).
_VALUE_REQUIRED = {"LIKE", "UNLIKE", "MAX_PER", "IS"}
_VALUE_OPTIONAL = {"CLUSTER", "GROUP_BY"}


@dataclass(frozen=True, slots=True)
class AgentView:
    """What placement needs to know of one agent."""

    agent_id: str
    hostname: str
    attributes: dict[str, str] = field(default_factory=dict)   # plus "region"/"zone" for @region/@zone


def validate_constraint(c: Any) -> str | None:
    """Return why `c` is not a valid constraint, or None when it is."""
    if not isinstance(c, (list, tuple)) or not 2 <= len(c) <= 3:
        return "Each constraint must have either 2 or 3 fields"
    if not all(isinstance(part, str) for part in c):
        return "Constraint fields must be strings"
    fld, op = c[0], c[1]
    value = c[2] if len(c) == 3 else None
    if not fld:
        return "Missing field for constraint"
    if op not in OPERATORS:
        return f"Invalid operator '{op}': must be one of {', '.join(OPERATORS)}"
    if op == "UNIQUE":
        return "Value specified but not used" if value else None
    if op in _VALUE_REQUIRED and not value:
        return f"Missing value for {op} constraint on field '{fld}'"
    if value is None or (op in _VALUE_OPTIONAL and value == ""):
        return None
    if op in ("GROUP_BY", "MAX_PER"):
        if not _is_int(value):
            return f"Value '{value}' for {op} constraint on field '{fld}' is not a valid integer"
        if op == "MAX_PER" and int(value) < 1:   # MAX_PER 0 could never place anything
            return f"Value '{value}' for MAX_PER constraint on field '{fld}' must be at least 1"
        return None
    if op in ("LIKE", "UNLIKE"):
        try:
            re.compile(value)
        except re.error as e:
            return f"'{value}' is not a valid regular expression: {e}"
    return None


def satisfies(constraints: Sequence[Sequence[str]], agent: AgentView,
              placed: Sequence[AgentView]) -> bool:
    """May one more instance go on `agent`, given its live instances' agents (`placed`,
    one entry per instance)? Assumes every constraint passed `validate_constraint`."""
    return all(_satisfies_one(c, agent, placed) for c in constraints)


def field_value(agent: AgentView, fld: str) -> str | None:
    """The text value of `fld` on `agent`, or None when the agent lacks it."""
    if fld in ("hostname", "@hostname"):
        return agent.hostname
    if fld == "@region":
        return agent.attributes.get("region")
    if fld == "@zone":
        return agent.attributes.get("zone")
    return agent.attributes.get(fld)


def _satisfies_one(c: Sequence[str], agent: AgentView, placed: Sequence[AgentView]) -> bool:
    fld, op = c[0], c[1]
    value = c[2] if len(c) == 3 and c[2] != "" else None
    mine = field_value(agent, fld)
    if mine is None:
        return op == "UNLIKE"
    # Placed instances on agents that lack the field (placed before the constraint
    # existed) have no value and take no part.
    used = Counter(v for v in (field_value(a, fld) for a in placed) if v is not None)
    if op == "UNIQUE":
        return used[mine] == 0
    if op == "CLUSTER":
        if value is not None:
            return mine == value
        pinned = next((v for v in (field_value(a, fld) for a in placed) if v is not None), None)
        return pinned is None or mine == pinned
    if op == "GROUP_BY":
        return _group_by(mine, used, int(value) if value is not None else 0)
    if op == "LIKE":
        return re.fullmatch(value or "", mine) is not None
    if op == "UNLIKE":
        return re.fullmatch(value or "", mine) is None
    if op == "MAX_PER":
        return used[mine] < int(value or "0")
    if op == "IS":
        return _same(mine, value or "")
    return False


def _group_by(mine: str, used: Counter[str], expected_groups: int) -> bool:
    if used[mine] == 0:
        return True
    if len(used) < expected_groups:
        return False            # unused groups count as 0: fill them first
    return used[mine] == min(used.values())


def _same(a: str, b: str) -> bool:
    try:
        return round(float(a), 3) == round(float(b), 3)
    except ValueError:
        return a == b


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
