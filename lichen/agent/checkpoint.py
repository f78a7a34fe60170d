"""What survives an agent restart: `<work-dir>/meta/`.

    meta/agent.json                                         {"agent_id": ...}
    meta/frameworks/<fw>/framework.json                     FrameworkInfo
    meta/frameworks/<fw>/executors/<ex>/executor.json       executor record
    meta/frameworks/<fw>/executors/<ex>/tasks/<t>/task.json task record (+ pending updates)

Every file is written to a temporary name, fsynced and renamed over the old one, so a
reader (the agent after a crash) sees a whole record or the previous one. IDs are
percent-quoted into path components. Records are plain JSON dicts; `agent.py` owns
their shape.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote


def component(id_: str) -> str:
    """A path component for an id: never empty, never `.`/`..`, no `/`."""
    q = quote(id_, safe="")
    if q in ("", ".", ".."):
        q = q.replace(".", "%2E") or "%00"
    return q


def write_json(path: Path, obj: Any) -> None:
    """Atomically replace `path` with `obj` as JSON (tmp + fsync + rename + dir fsync)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = json.dumps(obj, separators=(",", ":")).encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


@dataclass(slots=True)
class RecoveredExecutor:
    record: dict[str, Any]
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(slots=True)
class RecoveredFramework:
    info: dict[str, Any]
    executors: dict[str, RecoveredExecutor] = field(default_factory=dict)


@dataclass(slots=True)
class Recovered:
    agent_id: str | None
    frameworks: dict[str, RecoveredFramework] = field(default_factory=dict)


class Checkpoint:
    def __init__(self, meta_dir: Path) -> None:
        self.meta = meta_dir

    def _fw(self, fw: str) -> Path:
        return self.meta / "frameworks" / component(fw)

    def _ex(self, fw: str, ex: str) -> Path:
        return self._fw(fw) / "executors" / component(ex)

    def _task(self, fw: str, ex: str, task: str) -> Path:
        return self._ex(fw, ex) / "tasks" / component(task)

    def save_agent_id(self, agent_id: str) -> None:
        write_json(self.meta / "agent.json", {"agent_id": agent_id})

    def save_framework(self, fw: str, info: dict[str, Any]) -> None:
        write_json(self._fw(fw) / "framework.json", info)

    def save_executor(self, fw: str, ex: str, record: dict[str, Any]) -> None:
        write_json(self._ex(fw, ex) / "executor.json", record)

    def save_task(self, fw: str, ex: str, task: str, record: dict[str, Any]) -> None:
        write_json(self._task(fw, ex, task) / "task.json", record)

    def remove_task(self, fw: str, ex: str, task: str) -> None:
        shutil.rmtree(self._task(fw, ex, task), ignore_errors=True)

    def remove_executor(self, fw: str, ex: str) -> None:
        shutil.rmtree(self._ex(fw, ex), ignore_errors=True)

    def remove_framework(self, fw: str) -> None:
        shutil.rmtree(self._fw(fw), ignore_errors=True)

    def load(self) -> Recovered:
        """Everything checkpointed; unreadable records are skipped (a crash mid-mkdir)."""
        agent = _read_json(self.meta / "agent.json")
        out = Recovered(agent_id=agent.get("agent_id") if isinstance(agent, dict) else None)
        fw_root = self.meta / "frameworks"
        if not fw_root.is_dir():
            return out
        for fw_dir in sorted(fw_root.iterdir()):
            info = _read_json(fw_dir / "framework.json")
            if not isinstance(info, dict):
                continue
            fw = RecoveredFramework(info=info)
            out.frameworks[unquote(fw_dir.name)] = fw
            ex_root = fw_dir / "executors"
            for ex_dir in sorted(ex_root.iterdir()) if ex_root.is_dir() else []:
                record = _read_json(ex_dir / "executor.json")
                if not isinstance(record, dict):
                    continue
                ex = RecoveredExecutor(record=record)
                fw.executors[unquote(ex_dir.name)] = ex
                t_root = ex_dir / "tasks"
                for t_dir in sorted(t_root.iterdir()) if t_root.is_dir() else []:
                    task = _read_json(t_dir / "task.json")
                    if isinstance(task, dict):
                        ex.tasks[unquote(t_dir.name)] = task
        return out
