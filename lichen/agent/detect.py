"""What the agent advertises: detected resources and parsed attributes.

Resources the `--resources` flag does not name are detected as Mesos does: cpus from
the CPU count, mem as total memory minus 1 GB of headroom (but at least half of it),
disk as the free space of the work dir's filesystem minus 5 GB of headroom (but at
least half of it), ports `[31000-32000]`. Attributes use Mesos's syntax,
`name:value;name:value`, where a value is a scalar (`1`, `2.5`), ranges (`[1-10]`) or
text.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from lichen.errors import InvalidRequest

_MB = 1024 * 1024
_MEM_HEADROOM_MB = 1024.0
_DISK_HEADROOM_MB = 5 * 1024.0
DEFAULT_PORTS = "[31000-32000]"

_NAME = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(\([^)]*\))?\s*(\{[^}]*\})?\s*:")
_SCALAR = re.compile(r"^-?\d+(\.\d+)?$")
_RANGES = re.compile(r"^\[\s*\d+\s*-\s*\d+\s*(,\s*\d+\s*-\s*\d+\s*)*\]$")


def named_resources(text: str | None) -> set[str]:
    """The resource names a Mesos resource string mentions."""
    names: set[str] = set()
    for part in _split(text or ""):
        m = _NAME.match(part)
        if m:
            names.add(m.group(1))
    return names


def _split(text: str) -> list[str]:
    """Split on ';' outside brackets (ranges and sets contain no ';', but be safe)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == ";" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in parts if p.strip()]


def total_memory_mb() -> float:
    import psutil

    return float(psutil.virtual_memory().total) / _MB


def free_disk_mb(path: Path) -> float:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return float(shutil.disk_usage(probe).free) / _MB


def default_mem(total_mb: float) -> float:
    """Mesos: total minus 1 GB headroom, or half the memory when that is smaller."""
    mem = max(total_mb - _MEM_HEADROOM_MB, total_mb / 2)
    return float(int(mem))


def default_disk(free_mb: float) -> float:
    disk = max(free_mb - _DISK_HEADROOM_MB, free_mb / 2)
    return float(int(disk))


def resource_text(flag: str | None, *, cpus: int, mem_total_mb: float, disk_free_mb: float) -> str:
    """The `--resources` text with every missing standard resource filled in (pure)."""
    named = named_resources(flag)
    parts = [p.strip() for p in _split(flag or "")]
    if "cpus" not in named:
        parts.append(f"cpus:{cpus}")
    if "mem" not in named:
        parts.append(f"mem:{default_mem(mem_total_mb):g}")
    if "disk" not in named:
        parts.append(f"disk:{default_disk(disk_free_mb):g}")
    if "ports" not in named:
        parts.append(f"ports:{DEFAULT_PORTS}")
    return ";".join(parts)


def detect_resource_text(flag: str | None, work_dir: Path) -> str:
    return resource_text(
        flag,
        cpus=os.cpu_count() or 1,
        mem_total_mb=total_memory_mb(),
        disk_free_mb=free_disk_mb(work_dir),
    )


def parse_attributes(text: str | None) -> list[dict[str, Any]]:
    """Mesos attribute syntax → v1 JSON `Attribute` list. Raises InvalidRequest."""
    out: list[dict[str, Any]] = []
    for part in _split(text or ""):
        name, sep, value = part.partition(":")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise InvalidRequest(f"invalid attribute '{part.strip()}': expected name:value")
        if _SCALAR.match(value):
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
        elif _RANGES.match(value):
            ranges = []
            for r in value[1:-1].split(","):
                lo, hi = r.split("-")
                ranges.append({"begin": int(lo), "end": int(hi)})
            out.append({"name": name, "type": "RANGES", "ranges": {"range": ranges}})
        else:
            out.append({"name": name, "type": "TEXT", "text": {"value": value}})
    return out


def attributes_state_json(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """The `/state` shape: `{name: value}` (ranges as "[a-b, c-d]")."""
    out: dict[str, Any] = {}
    for a in attributes:
        if a["type"] == "SCALAR":
            out[a["name"]] = a["scalar"]["value"]
        elif a["type"] == "RANGES":
            rs = ", ".join(f"{r['begin']}-{r['end']}" for r in a["ranges"]["range"])
            out[a["name"]] = f"[{rs}]"
        else:
            out[a["name"]] = a["text"]["value"]
    return out
