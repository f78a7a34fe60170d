"""Mesos resources: scalars, ranges and sets, each statically reserved for a role or not.

A `Resources` value is immutable. Internally it is one dict keyed by `(name, role)`:

- scalars are ints in thousandths (Mesos keeps scalars in fixed point with three
  decimals, so `0.1 + 0.2` is exactly `0.3` here too);
- ranges are a sorted tuple of disjoint, non-adjacent inclusive `(begin, end)` pairs;
- sets are a frozenset of strings.

Empty entries (zero scalars, no ranges, no items) are never stored, so a value is empty
exactly when its dict is. Role `"*"` means unreserved. The allocator adds and
subtracts these hundreds of thousands of times per cycle, hence the fast paths for
empty operands, scalar-only values and the caches of hash, roles and DRF quantities.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from lichen.errors import InvalidRequest

UNRESERVED = "*"

Range = tuple[int, int]
_Ranges = tuple[Range, ...]
_Value = int | _Ranges | frozenset[str]
_Key = tuple[str, str]

# The scalar names the DRF sorter and /master/state always report.
DRF_NAMES: tuple[str, ...] = ("cpus", "mem", "disk", "gpus")
# Mesos's default --min_allocatable_resources is "cpus:0.01|mem:32", in thousandths.
_MIN_CPUS_MILLI = 10
_MIN_MEM_MILLI = 32_000


def _milli(value: float) -> int:
    return round(value * 1000.0)


def _merge_ranges(ranges: Iterable[Range]) -> _Ranges:
    out: list[list[int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([begin, end])
    return tuple((b, e) for b, e in out)


def _ranges_contain(outer: _Ranges, inner: _Ranges) -> bool:
    i = 0
    for begin, end in inner:
        while i < len(outer) and outer[i][1] < begin:
            i += 1
        if i == len(outer) or outer[i][0] > begin or outer[i][1] < end:
            return False
    return True


def _subtract_ranges(a: _Ranges, b: _Ranges) -> _Ranges:
    out: list[Range] = []
    for begin, end in a:
        cur = begin
        for rb, re_ in b:
            if re_ < cur or rb > end:
                continue
            if rb > cur:
                out.append((cur, rb - 1))
            cur = max(cur, re_ + 1)
            if cur > end:
                break
        if cur <= end:
            out.append((cur, end))
    return tuple(out)


def _kind(value: _Value) -> str:
    if isinstance(value, int):
        return "SCALAR"
    if isinstance(value, tuple):
        return "RANGES"
    return "SET"


def _format_ranges(ranges: _Ranges) -> str:
    return "[" + ", ".join(f"{b}-{e}" for b, e in ranges) + "]"


def _format_set(items: frozenset[str]) -> str:
    return "{" + ", ".join(sorted(items)) + "}"


def _scalar_float(milli: int) -> float:
    return milli / 1000.0


class Resources:
    """An immutable bag of resources merged by (name, role)."""

    __slots__ = ("_drf", "_hash", "_items", "_min_ok", "_roles", "_scalar_only")

    _items: dict[_Key, _Value]
    _hash: int | None
    _roles: frozenset[str] | None
    _drf: tuple[int, int, int, int] | None
    _min_ok: bool | None
    _scalar_only: bool | None

    def __init__(self) -> None:
        # Build values with parse/from_json/empty; this is the empty value.
        self._items = {}
        self._hash = None
        self._roles = None
        self._drf = None
        self._min_ok = None
        self._scalar_only = None

    # ------------------------------------------------------------------ building

    @staticmethod
    def _make(items: dict[_Key, _Value]) -> Resources:
        r = Resources.__new__(Resources)
        r._items = items
        r._hash = None
        r._roles = None
        r._drf = None
        r._min_ok = None
        r._scalar_only = None
        return r

    @staticmethod
    def empty() -> Resources:
        return _EMPTY

    @staticmethod
    def scalars(values: dict[str, float], role: str = UNRESERVED) -> Resources:
        """Scalars only, all for one role: `Resources.scalars({"cpus": 1, "mem": 128})`."""
        items: dict[_Key, _Value] = {}
        for name, value in values.items():
            if value < 0:
                raise InvalidRequest(f"negative scalar {name}:{value}", field=name)
            milli = _milli(value)
            if milli:
                items[(name, role)] = milli
        return Resources._make(items)

    @staticmethod
    def parse(text: str) -> Resources:
        """Parse the agent `--resources` syntax, or a JSON resource list if it starts with '['.

        `cpus:4;mem:4096;ports:[31000-32000];cpus(ops):2;zones:{a,b}`
        """
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                data = json.loads(stripped)
            except ValueError as exc:
                raise InvalidRequest(f"invalid resources JSON: {exc}", field="resources") from exc
            if not isinstance(data, list):
                raise InvalidRequest("resources JSON must be a list", field="resources")
            return Resources.from_json(data)
        builder = _Builder()
        for part in stripped.split(";"):
            part = part.strip()
            if not part:
                continue
            name_role, sep, value = part.partition(":")
            if not sep:
                raise InvalidRequest(f"invalid resource '{part}': expected name:value", field=part)
            name_role = name_role.strip()
            value = value.strip()
            role = UNRESERVED
            if "(" in name_role:
                if not name_role.endswith(")"):
                    raise InvalidRequest(f"invalid resource '{part}': bad role", field=part)
                name_role, _, role = name_role[:-1].partition("(")
                role = role.strip()
                name_role = name_role.strip()
                if not role:
                    raise InvalidRequest(f"invalid resource '{part}': empty role", field=part)
            if not name_role:
                raise InvalidRequest(f"invalid resource '{part}': empty name", field=part)
            builder.add(name_role, role, _parse_value(part, value), part)
        return builder.build()

    @staticmethod
    def from_json(items: list[dict[str, Any]]) -> Resources:
        """Build from a Mesos v1 JSON `Resource` list."""
        if not isinstance(items, list):
            raise InvalidRequest("resources must be a list", field="resources")
        builder = _Builder()
        for i, item in enumerate(items):
            where = f"resources[{i}]"
            if not isinstance(item, dict):
                raise InvalidRequest(f"{where} is not an object", field=where)
            name = item.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequest(f"{where} has no name", field=where)
            role = _json_role(item, where)
            kind = item.get("type", "SCALAR")
            builder.add(name, role, _json_value(item, kind, f"{where} ({name})"), where)
        return builder.build()

    # ------------------------------------------------------------------ rendering

    def to_json(
        self, *, refinement: bool = False, allocation_role: str | None = None
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for (name, role), value in sorted(self._items.items(), key=lambda kv: kv[0]):
            entry: dict[str, Any] = {"name": name, "type": _kind(value)}
            if isinstance(value, int):
                entry["scalar"] = {"value": _scalar_float(value)}
            elif isinstance(value, tuple):
                entry["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
            else:
                entry["set"] = {"item": sorted(value)}
            if role == UNRESERVED:
                entry["role"] = UNRESERVED
            elif refinement:
                entry["reservations"] = [{"type": "STATIC", "role": role}]
            else:
                entry["role"] = role
            if allocation_role is not None:
                entry["allocation_info"] = {"role": allocation_role}
            out.append(entry)
        return out

    def to_state_json(self) -> dict[str, float | str]:
        """The `/master/state` shape: roles merged, ranges and sets as strings."""
        out: dict[str, float | str] = {name: 0.0 for name in DRF_NAMES}
        for name in sorted(self.names()):
            kinds = {_kind(v) for (n, _), v in self._items.items() if n == name}
            if kinds == {"SCALAR"}:
                out[name] = self.scalar(name)
            elif kinds == {"RANGES"}:
                out[name] = _format_ranges(tuple(self.ranges(name)))
            elif kinds == {"SET"}:
                out[name] = _format_set(frozenset(self.set(name)))
        return out

    def __repr__(self) -> str:
        if not self._items:
            return "Resources()"
        parts: list[str] = []
        for (name, role), value in sorted(self._items.items(), key=lambda kv: kv[0]):
            label = name if role == UNRESERVED else f"{name}({role})"
            if isinstance(value, int):
                text = f"{_scalar_float(value):g}"
            elif isinstance(value, tuple):
                text = _format_ranges(value).replace(" ", "")
            else:
                text = _format_set(value).replace(" ", "")
            parts.append(f"{label}:{text}")
        return f"Resources({';'.join(parts)!r})"

    def __str__(self) -> str:
        return repr(self)[len("Resources('") : -2] if self._items else ""

    # ------------------------------------------------------------------ queries

    def is_empty(self) -> bool:
        return not self._items

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def names(self) -> set[str]:
        return {name for name, _ in self._items}

    def roles(self) -> set[str]:
        return set(self._role_set())

    def role_set(self) -> frozenset[str]:
        """`roles()` as a cached frozenset (no copy)."""
        return self._role_set()

    def _role_set(self) -> frozenset[str]:
        roles = self._roles
        if roles is None:
            roles = self._roles = frozenset(role for _, role in self._items)
        return roles

    def scalar(self, name: str) -> float:
        total = 0
        for (n, _), value in self._items.items():
            if n == name and isinstance(value, int):
                total += value
        return _scalar_float(total)

    def ranges(self, name: str) -> list[Range]:
        found: list[Range] = []
        for (n, _), value in self._items.items():
            if n == name and isinstance(value, tuple):
                found.extend(value)
        return list(_merge_ranges(found))

    def set(self, name: str) -> set[str]:
        found: set[str] = set()
        for (n, _), value in self._items.items():
            if n == name and isinstance(value, frozenset):
                found |= value
        return found

    def drf_quantities(self) -> tuple[int, int, int, int]:
        """cpus, mem, disk, gpus in thousandths, summed over roles (cached)."""
        drf = self._drf
        if drf is None:
            sums = [0, 0, 0, 0]
            for (name, _), value in self._items.items():
                if isinstance(value, int) and name in DRF_NAMES:
                    sums[DRF_NAMES.index(name)] += value
            drf = self._drf = (sums[0], sums[1], sums[2], sums[3])
        return drf

    def is_allocatable(self) -> bool:
        """Whether this meets Mesos's default min_allocatable_resources (cpus:0.01 or mem:32)."""
        ok = self._min_ok
        if ok is None:
            cpus, mem, _, _ = self.drf_quantities()
            ok = self._min_ok = cpus >= _MIN_CPUS_MILLI or mem >= _MIN_MEM_MILLI
        return ok

    # ------------------------------------------------------------------ slicing

    def filter(self, predicate: Callable[[str, str], bool]) -> Resources:
        """Keep the entries whose (name, role) satisfy `predicate`."""
        return Resources._make({k: v for k, v in self._items.items() if predicate(k[0], k[1])})

    def reserved(self, role: str) -> Resources:
        roles = self._role_set()
        if role not in roles:
            return _EMPTY
        if len(roles) == 1:
            return self
        return Resources._make({k: v for k, v in self._items.items() if k[1] == role})

    def unreserved(self) -> Resources:
        return self.reserved(UNRESERVED)

    def reservations(self) -> Resources:
        """Everything reserved for some role (not `"*"`)."""
        roles = self._role_set()
        if UNRESERVED not in roles:
            return self
        if len(roles) == 1:
            return _EMPTY
        return Resources._make({k: v for k, v in self._items.items() if k[1] != UNRESERVED})

    def allocatable_to(self, role: str) -> Resources:
        """What a framework in `role` may be offered: unreserved plus reserved for `role`."""
        roles = self._role_set()
        if len(roles) == 1 and (UNRESERVED in roles or role in roles):
            return self
        return Resources._make(
            {k: v for k, v in self._items.items() if k[1] == UNRESERVED or k[1] == role}
        )

    def with_role(self, role: str) -> Resources:
        """The same quantities, all reserved for `role` (or unreserved for `"*"`)."""
        builder = _Builder()
        for (name, _), value in self._items.items():
            builder.add(name, role, value, name)
        return builder.build()

    # ------------------------------------------------------------------ arithmetic

    def _is_scalar_only(self) -> bool:
        flag = self._scalar_only
        if flag is None:
            flag = self._scalar_only = all(isinstance(v, int) for v in self._items.values())
        return flag

    def __add__(self, other: Resources) -> Resources:
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items:
            return self
        if not self._items:
            return other
        items = dict(self._items)
        if self._is_scalar_only() and other._is_scalar_only():
            for key, value in other._items.items():
                items[key] = items.get(key, 0) + value  # type: ignore[operator]
            return Resources._make(items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                items[key] = value
            elif isinstance(mine, int) and isinstance(value, int):
                items[key] = mine + value
            elif isinstance(mine, tuple) and isinstance(value, tuple):
                items[key] = _merge_ranges(mine + value)
            elif isinstance(mine, frozenset) and isinstance(value, frozenset):
                items[key] = mine | value
            else:
                raise ValueError(f"type mismatch for resource {key[0]}({key[1]})")
        return Resources._make(items)

    def __sub__(self, other: Resources) -> Resources:
        """Take `other` away; raises ValueError if it is not contained in self."""
        if not isinstance(other, Resources):
            return NotImplemented
        if not other._items:
            return self
        if other is self:
            return _EMPTY
        items = dict(self._items)
        for key, value in other._items.items():
            mine = items.get(key)
            if mine is None:
                raise ValueError(f"cannot subtract {other!r} from {self!r}: no {key[0]}({key[1]})")
            if isinstance(mine, int) and isinstance(value, int):
                left: _Value = mine - value
                if left < 0:  # type: ignore[operator]
                    raise ValueError(
                        f"cannot subtract {other!r} from {self!r}: not enough {key[0]}"
                    )
            elif isinstance(mine, tuple) and isinstance(value, tuple):
                if not _ranges_contain(mine, value):
                    raise ValueError(f"cannot subtract {other!r} from {self!r}: {key[0]} missing")
                left = _subtract_ranges(mine, value)
            elif isinstance(mine, frozenset) and isinstance(value, frozenset):
                if not value <= mine:
                    raise ValueError(f"cannot subtract {other!r} from {self!r}: {key[0]} missing")
                left = mine - value
            else:
                raise ValueError(  # noqa: TRY004 - a mismatch is a bad value, not a bad type
                    f"type mismatch for resource {key[0]}({key[1]})"
                )
            if left:
                items[key] = left
            else:
                del items[key]
        return Resources._make(items)

    def contains(self, other: Resources) -> bool:
        """Whether every entry of `other` (per name and role) is within self."""
        if not other._items:
            return True
        mine_items = self._items
        for key, value in other._items.items():
            mine = mine_items.get(key)
            if mine is None:
                return False
            if isinstance(mine, int) and isinstance(value, int):
                if value > mine:
                    return False
            elif isinstance(mine, tuple) and isinstance(value, tuple):
                if not _ranges_contain(mine, value):
                    return False
            elif isinstance(mine, frozenset) and isinstance(value, frozenset):
                if not value <= mine:
                    return False
            else:
                return False
        return True

    def __le__(self, other: Resources) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return other.contains(self)

    def __ge__(self, other: Resources) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self.contains(other)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Resources):
            return NotImplemented
        return self is other or self._items == other._items

    def __hash__(self) -> int:
        h = self._hash
        if h is None:
            h = self._hash = hash(frozenset(self._items.items()))
        return h

    def __reduce__(self) -> tuple[Any, ...]:
        return (Resources.from_json, (self.to_json(refinement=True),))


_EMPTY = Resources._make({})


class _Builder:
    """Merges parsed entries, checking that one name keeps one type."""

    def __init__(self) -> None:
        self.items: dict[_Key, _Value] = {}
        self.kinds: dict[str, str] = {}

    def add(self, name: str, role: str, value: _Value, where: str) -> None:
        kind = _kind(value)
        known = self.kinds.setdefault(name, kind)
        if known != kind:
            raise InvalidRequest(
                f"resource '{name}' in {where!r} is {kind} but was {known} before", field=where
            )
        key = (name, role)
        mine = self.items.get(key)
        if mine is None:
            merged = value
        elif isinstance(mine, int) and isinstance(value, int):
            merged = mine + value
        elif isinstance(mine, tuple) and isinstance(value, tuple):
            merged = _merge_ranges(mine + value)
        elif isinstance(mine, frozenset) and isinstance(value, frozenset):
            merged = mine | value
        else:  # the kinds check above makes this unreachable
            raise InvalidRequest(f"resource '{name}' changes type in {where!r}", field=where)
        self.items[key] = merged

    def build(self) -> Resources:
        return Resources._make({k: v for k, v in self.items.items() if v})


def _parse_number(part: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidRequest(f"invalid scalar in resource '{part}'", field=part) from None
    if not math.isfinite(value):
        raise InvalidRequest(f"invalid scalar in resource '{part}'", field=part)
    if value < 0:
        raise InvalidRequest(f"negative scalar in resource '{part}'", field=part)
    return value


def _parse_value(part: str, text: str) -> _Value:
    if text.startswith("["):
        if not text.endswith("]"):
            raise InvalidRequest(f"invalid ranges in resource '{part}'", field=part)
        pairs: list[Range] = []
        for chunk in text[1:-1].split(","):
            chunk = chunk.strip()
            if not chunk:
                continue
            b, sep, e = chunk.partition("-")
            try:
                begin = int(b.strip())
                end = int(e.strip()) if sep else begin
            except ValueError:
                raise InvalidRequest(
                    f"invalid range '{chunk}' in resource '{part}'", field=part
                ) from None
            if begin < 0 or end < begin:
                raise InvalidRequest(f"invalid range '{chunk}' in resource '{part}'", field=part)
            pairs.append((begin, end))
        return _merge_ranges(pairs)
    if text.startswith("{"):
        if not text.endswith("}"):
            raise InvalidRequest(f"invalid set in resource '{part}'", field=part)
        return frozenset(i.strip() for i in text[1:-1].split(",") if i.strip())
    return _milli(_parse_number(part, text))


def _json_role(item: dict[str, Any], where: str) -> str:
    reservations = item.get("reservations")
    if reservations:
        if not isinstance(reservations, list) or not isinstance(reservations[-1], dict):
            raise InvalidRequest(f"{where} has invalid reservations", field=where)
        role = reservations[-1].get("role", UNRESERVED)
    else:
        role = item.get("role", UNRESERVED)
    if not isinstance(role, str) or not role:
        raise InvalidRequest(f"{where} has an invalid role", field=where)
    return role


def _json_value(item: dict[str, Any], kind: Any, where: str) -> _Value:
    try:
        if kind == "SCALAR":
            scalar = item["scalar"]
            value = scalar["value"]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRequest(f"{where} has a non-numeric scalar", field=where)
            return _milli(_parse_number(where, str(value)))
        if kind == "RANGES":
            pairs: list[Range] = []
            for r in item["ranges"].get("range", []):
                begin, end = r["begin"], r["end"]
                if (
                    isinstance(begin, bool)
                    or not isinstance(begin, int)
                    or not isinstance(end, int)
                    or begin < 0
                    or end < begin
                ):
                    raise InvalidRequest(f"{where} has an invalid range {r}", field=where)
                pairs.append((begin, end))
            return _merge_ranges(pairs)
        if kind == "SET":
            entries = item["set"].get("item", [])
            if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
                raise InvalidRequest(f"{where} has an invalid set", field=where)
            return frozenset(entries)
    except (KeyError, TypeError, AttributeError):
        raise InvalidRequest(f"{where} does not match its type {kind}", field=where) from None
    raise InvalidRequest(f"{where} has unknown type {kind!r}", field=where)


def saturating_sub(a: Resources, b: Resources) -> Resources:
    """`a - b`, but taking away only what `a` has (never raises)."""
    if not b or not a:
        return a
    if b is a:
        return _EMPTY
    items = dict(a._items)
    for key, value in b._items.items():
        mine = items.get(key)
        if mine is None:
            continue
        if isinstance(mine, int) and isinstance(value, int):
            left: _Value = max(0, mine - value)
        elif isinstance(mine, tuple) and isinstance(value, tuple):
            left = _subtract_ranges(mine, value)
        elif isinstance(mine, frozenset) and isinstance(value, frozenset):
            left = mine - value
        else:
            continue
        if left:
            items[key] = left
        else:
            del items[key]
    return Resources._make(items)
