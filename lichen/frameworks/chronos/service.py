"""The Chronos service: the shell around the schedule, graph and job cores.

Theory of operation. Jobs live in memory and in the store. A heap holds each enabled
scheduled job's next occurrence; the scheduler loop sleeps until the earliest one (or a
change wakes it), asks `schedule.due` what to do, queues the run and stores the advanced
schedule together with the queued run, so that a restart neither runs an instant twice
nor loses it. Queued runs wait for offers (the service revives offers when the queue
fills and declines them for a while when it is empty); a launched run is *running* until
its terminal status update. Success fires the dependents through the graph's edge
counters; failure queues a retry after `--failure-retry` seconds or, when the retries
are used up, counts a final error. Every run is kept in a bounded history.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lichen.clock import Clock
from lichen.errors import InvalidRequest
from lichen.frameworks.chronos import job as jobs
from lichen.frameworks.chronos import schedule as sched
from lichen.frameworks.chronos.graph import DependencyGraph
from lichen.frameworks.chronos.service_api import RunRecord
from lichen.frameworks.daemon import FrameworkFlags, cancel_tasks, start_scheduler, wait_woken
from lichen.frameworks.offers import offer_attributes, offer_resources
from lichen.frameworks.scheduler_client import SchedulerClient
from lichen.resources import Resources
from lichen.state.store import Store

log = logging.getLogger(__name__)

SUCCESS = {"TASK_FINISHED"}
FAILURE = {"TASK_FAILED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}
TERMINAL = SUCCESS | FAILURE | {"TASK_KILLED"}
DUE_SOON = 5.0        # seconds: runs due this soon keep offers coming
SHORT_DECLINE = 0.5   # seconds: shorter than the allocation interval


@dataclass(frozen=True, slots=True)
class ChronosFlags(FrameworkFlags):
    port: int = 4400
    framework_name: str = "chronos"
    user: str = "root"
    task_cpu: float = 0.1
    task_mem: float = 128.0
    task_disk: float = 256.0
    task_epsilon: float = 60.0
    failure_retry: float = 60.0
    disable_after_failures: int = 0
    max_history: int = 100
    decline_offer_duration: float = 30.0


@dataclass(frozen=True, slots=True)
class Run:
    """A queued run: waiting for `not_before` and then for an offer."""

    task_id: str
    job: str
    due: float
    attempt: int
    args: str
    not_before: float
    extra: str = ""         # a manual run's `arguments`, appended to the command


def _key(name: str) -> str:
    return quote(name, safe="")


class ChronosService:
    def __init__(self, flags: ChronosFlags, store: Store, clock: Clock) -> None:
        self.flags = flags
        self.store = store
        self.clock = clock
        self.defaults = jobs.JobDefaults(cpus=flags.task_cpu, mem=flags.task_mem, disk=flags.task_disk,
                                         epsilon=flags.task_epsilon, user=flags.user)
        self._jobs: dict[str, Any] = {}
        self.graph = DependencyGraph()
        self.queue: dict[str, Run] = {}                 # task id -> run
        self.running: dict[str, RunRecord] = {}         # task id -> record
        self._history: dict[str, deque[RunRecord]] = {}
        self._heap: list[tuple[float, str, int]] = []   # (next run, job, generation)
        self._generation: dict[str, int] = {}
        self.client: SchedulerClient | None = None
        self.address = ""
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._declined = False
        self.skipped = 0

    # ================================================================ lifecycle

    async def recover(self) -> None:
        now = self.clock.now()
        for raw in (await self.store.list("chronos/jobs/")).values():
            job = jobs.parse_job(json.loads(raw), now=now, defaults=self.defaults, kind=None)
            self._jobs[job.name] = job
        for job in self._jobs.values():
            if job.parents:
                self.graph.set_parents(job.name, set(job.parents))
        counters = await self.store.get("chronos/graph")
        if counters:
            self.graph.load_counters(json.loads(counters))
        for raw in (await self.store.list("chronos/queue/")).values():
            run = Run(**json.loads(raw))
            owner = self._jobs.get(run.job)
            # Chronos 2.x drops persisted runs whose due time plus epsilon has passed.
            if owner is not None and (run.attempt > 0 or run.due + owner.epsilon >= now):
                self.queue[run.task_id] = run
            else:
                await self.store.delete(f"chronos/queue/{run.task_id}")
        for raw in (await self.store.list("chronos/running/")).values():
            rec = RunRecord(**json.loads(raw))
            self.running[rec.task_id] = rec
        for raw in (await self.store.list("chronos/history/")).values():
            recs = [RunRecord(**r) for r in json.loads(raw)]
            if recs:
                self._history[recs[0].job_name] = deque(recs, maxlen=self.flags.max_history)
        for name in self._jobs:
            self._push(name)
        log.info("recovered %d jobs, %d queued runs, %d running", len(self._jobs), len(self.queue), len(self.running))

    async def start(self) -> None:
        self.client = await start_scheduler(
            self.flags, self.store, id_key="chronos/framework_id", user=self.flags.user, address=self.address,
            capabilities=["PARTITION_AWARE"], on_event=self._on_event)
        self._tasks = [asyncio.get_running_loop().create_task(self._loop(), name="chronos-scheduler")]

    async def stop(self) -> None:
        await cancel_tasks(self._tasks)
        if self.client is not None:
            await self.client.stop()

    # ================================================================ reads

    def jobs(self) -> list[Any]:
        return [self._jobs[n] for n in sorted(self._jobs)]

    def get_job(self, name: str) -> Any | None:
        return self._jobs.get(name)

    def job_state(self, name: str) -> str:
        n = sum(1 for r in self.running.values() if r.job_name == name)
        if n:
            return f"{n} running"
        if any(r.job == name for r in self.queue.values()):
            return "queued"
        return "idle"

    def last_status(self, name: str) -> str:
        job = self._jobs.get(name)
        if job is None or (not job.last_success and not job.last_error):
            return "fresh"
        return "failure" if job.last_error > job.last_success else "success"

    def history(self, name: str) -> list[RunRecord]:
        done = list(self._history.get(name, ()))
        live = [r for r in self.running.values() if r.job_name == name]
        return done + live

    def leader(self) -> str:
        return self.address

    def _require(self, name: str) -> Any:
        job = self._jobs.get(name)
        if job is None:
            raise InvalidRequest(f"Job '{name}' not found")
        return job

    # ================================================================ changes

    async def put_job(self, job: Any) -> None:
        async with self._lock:
            if job.parents:
                missing = [p for p in job.parents if p not in self._jobs]
                if missing:
                    raise InvalidRequest(f"Parent job(s) not found: {', '.join(sorted(missing))}")
                cycle = self.graph.would_cycle(job.name, set(job.parents))
                if cycle:
                    raise InvalidRequest("dependency cycle: " + " -> ".join(cycle))
            await self.store.put_many({f"chronos/jobs/{_key(job.name)}": json.dumps(job.raw).encode()})
            self._jobs[job.name] = job
            self.graph.set_parents(job.name, set(job.parents or ()))
            self._push(job.name)
            self._wake.set()

    async def delete_job(self, name: str) -> None:
        async with self._lock:
            job = self._require(name)
            writes: dict[str, bytes | None] = {f"chronos/jobs/{_key(name)}": None,
                                               f"chronos/history/{_key(name)}": None}
            changed: list[Any] = []
            for child_name in sorted(self.graph.children(name)):
                child = self._jobs.get(child_name)
                if child is None:
                    continue
                if job.parents:  # a dependent job's children inherit its parents
                    parents = (set(child.parents or ()) - {name}) | set(job.parents)
                    child = jobs.with_parents(child, sorted(parents))
                else:            # a scheduled job's children take over its schedule
                    parents = set(child.parents or ()) - {name}
                    child = jobs.with_parents(child, sorted(parents)) if parents else \
                        jobs.with_schedule(child, job.schedule or "", job.schedule_time_zone)
                changed.append(child)
                writes[f"chronos/jobs/{_key(child.name)}"] = json.dumps(child.raw).encode()
            for run in [r for r in self.queue.values() if r.job == name]:
                writes[f"chronos/queue/{run.task_id}"] = None
            await self.store.put_many(writes)
            for run in [r for r in self.queue.values() if r.job == name]:
                del self.queue[run.task_id]
            del self._jobs[name]
            self._history.pop(name, None)
            self.graph.remove(name)
            for child in changed:
                self._jobs[child.name] = child
                self.graph.set_parents(child.name, set(child.parents or ()))
                self._push(child.name)
            self._generation[name] = self._generation.get(name, 0) + 1
            await self._kill_running(name)

    async def run_job(self, name: str, arguments: str | None = None) -> None:
        async with self._lock:
            job = self._require(name)
            if job.disabled:
                return  # Chronos answers 204 and runs nothing
            args = arguments if arguments is not None else " ".join(job.arguments)
            await self._enqueue(job, due=self.clock.now(), attempt=0, args=args, extra=arguments or "")

    async def kill_tasks(self, name: str) -> None:
        async with self._lock:
            self._require(name)
            dropped = [r for r in self.queue.values() if r.job == name]
            await self.store.put_many({f"chronos/queue/{r.task_id}": None for r in dropped})
            for r in dropped:
                del self.queue[r.task_id]
            await self._kill_running(name)

    async def _kill_running(self, name: str) -> None:
        if self.client is None:
            return
        for rec in [r for r in self.running.values() if r.job_name == name]:
            await self.client.call("KILL", {"task_id": {"value": rec.task_id}, "agent_id": {"value": rec.agent_id}})

    async def mark_success(self, name: str) -> bool:
        async with self._lock:
            job = self._jobs.get(name)
            if job is None:
                return False
            await self._succeeded(job, None, self.clock.now())
            return True

    async def task_finished(self, task_id: str, status_code: int) -> None:
        async with self._lock:
            parsed = jobs.parse_task_id(task_id)
            if parsed is None or parsed[2] not in self._jobs:
                raise InvalidRequest(f"Unknown task '{task_id}'")
            job = self._jobs[parsed[2]]
            now = self.clock.now()
            if status_code == 0:
                await self._succeeded(job, None, now)
            else:
                await self._failed(job, parsed[1], parsed[3], now)

    async def progress(self, name: str, task_id: str, elements: int) -> None:
        job = self._require(name)
        if not job.data_job:
            raise InvalidRequest(f"Job '{name}' is not a data processing job")
        if elements < 0:
            raise InvalidRequest("'numAdditionalElementsProcessed' must not be negative")

    # ================================================================ scheduling

    def _push(self, name: str) -> None:
        """(Re)compute the job's next occurrence in the heap (old entries go stale)."""
        gen = self._generation.get(name, 0) + 1
        self._generation[name] = gen
        job = self._jobs.get(name)
        if job is None or job.disabled or not job.schedule:
            return
        try:
            s = sched.parse_schedule(job.schedule, time_zone=job.schedule_time_zone, now=self.clock.now())
            at = sched.next_run(s)
        except (sched.ScheduleError, ValueError, OverflowError):
            return
        if at is not None:
            heapq.heappush(self._heap, (at, name, gen))

    async def _loop(self) -> None:
        while True:
            now = self.clock.now()
            delay = 1.0
            if self._heap:
                delay = max(0.0, min(delay, self._heap[0][0] - now))
            if self.queue and any(r.not_before > now for r in self.queue.values()):
                delay = min(delay, max(0.0, min(r.not_before for r in self.queue.values()) - now))
            await wait_woken(self._wake, delay)
            try:
                async with self._lock:
                    await self._tick()
            except Exception:
                log.exception("chronos scheduling step failed")

    async def _tick(self) -> None:
        now = self.clock.now()
        writes: dict[str, bytes | None] = {}
        advanced: list[tuple[Any, Run | None]] = []
        while self._heap and self._heap[0][0] <= now:
            _, name, gen = heapq.heappop(self._heap)
            if self._generation.get(name) != gen:
                continue  # stale: the job changed or went away
            job = self._jobs[name]
            new_job, run, skipped = advance(job, now, self._may_start(job))
            self.skipped += skipped
            writes[f"chronos/jobs/{_key(name)}"] = json.dumps(new_job.raw).encode()
            if run is not None:
                writes[f"chronos/queue/{run.task_id}"] = json.dumps(dataclasses.asdict(run)).encode()
            advanced.append((new_job, run))
        # The advanced schedules and the queued runs are stored together: a restart
        # neither runs an instant again nor loses it.
        await self.store.put_many(writes)
        for new_job, run in advanced:
            self._jobs[new_job.name] = new_job
            if run is not None:
                self.queue[run.task_id] = run
            self._push(new_job.name)
        if self.queue and self._declined and self.client is not None and any(
                r.not_before <= now for r in self.queue.values()) and await self.client.call("REVIVE"):
            self._declined = False

    def _next_due(self) -> float:
        """When the next scheduled or retried run is due (inf when none is)."""
        times = [r.not_before for r in self.queue.values()]
        if self._heap:
            times.append(self._heap[0][0])
        return min(times, default=float("inf"))

    def _may_start(self, job: Any) -> bool:
        if job.concurrent:
            return True
        busy = any(r.job_name == job.name for r in self.running.values())
        return not busy and not any(r.job == job.name for r in self.queue.values())

    async def _enqueue(self, job: Any, *, due: float, attempt: int, args: str, not_before: float | None = None,
                       extra: str = "") -> None:
        run = Run(jobs.task_id(round(due * 1000), attempt, job.name, args), job.name, due, attempt, args,
                  not_before if not_before is not None else self.clock.now(), extra)
        await self.store.put(f"chronos/queue/{run.task_id}", json.dumps(dataclasses.asdict(run)).encode())
        self.queue[run.task_id] = run
        self._wake.set()
        if (self._declined and self.client is not None and run.not_before <= self.clock.now()
                and await self.client.call("REVIVE")):
            self._declined = False

    # ================================================================ scheduler events

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            await self.store.put("chronos/framework_id", event["subscribed"]["framework_id"]["value"].encode())
            # Offers this framework declined before a restart may still be filtered: revive
            # as soon as there is work.
            self._declined = True
            self._wake.set()
            if self.client is not None:
                tasks = [{"task_id": {"value": r.task_id}, "agent_id": {"value": r.agent_id}}
                         for r in self.running.values() if r.agent_id]
                if tasks:
                    await self.client.call("RECONCILE", {"tasks": tasks})
        elif kind == "OFFERS":
            async with self._lock:
                await self._offers(event["offers"]["offers"])
        elif kind == "UPDATE":
            async with self._lock:
                await self._update(event["update"]["status"])

    async def _offers(self, offers: list[dict[str, Any]]) -> None:
        assert self.client is not None
        now = self.clock.now()
        ready = sorted((r for r in self.queue.values() if r.not_before <= now),
                       key=lambda r: (not self._jobs[r.job].high_priority if r.job in self._jobs else True, r.due))
        for offer in offers:
            available = offer_resources(offer)
            attrs = offer_attributes(offer)
            attrs["hostname"] = offer.get("hostname", "")
            infos: list[dict[str, Any]] = []
            writes: dict[str, bytes | None] = {}
            started: list[RunRecord] = []
            for run in list(ready):
                job = self._jobs.get(run.job)
                if job is None:
                    ready.remove(run)
                    continue
                if not _constraints_ok(job.constraints, attrs):
                    continue
                need = Resources.scalars({"cpus": job.cpus, "mem": job.mem, "disk": job.disk})
                if not need <= available.unreserved() + available.reserved(self.flags.mesos_role):
                    continue
                use = need if need <= available.unreserved() else need.with_role(self.flags.mesos_role)
                if not use <= available:
                    continue
                available = available - use
                infos.append(self._task_info(job, run, offer, use))
                rec = RunRecord(task_id=run.task_id, job_name=job.name, agent_id=offer["agent_id"]["value"],
                                start=0.0, end=None, status="running")
                started.append(rec)
                writes[f"chronos/queue/{run.task_id}"] = None
                writes[f"chronos/running/{run.task_id}"] = json.dumps(dataclasses.asdict(rec)).encode()
                ready.remove(run)
            if infos:
                await self.store.put_many(writes)
                for rec in started:
                    self.queue.pop(rec.task_id, None)
                    self.running[rec.task_id] = rec
                    self.graph.child_started(rec.job_name)
                await self.store.put("chronos/graph", json.dumps(self.graph.to_json()).encode())
                await self.client.launch(offer["id"], infos)
            else:
                # Runs due soon: decline for less than an allocation interval, so the next
                # cycle offers again and no REVIVE is needed. Otherwise decline for long and
                # REVIVE when a run is queued.
                soon = bool(ready) or self._next_due() <= now + DUE_SOON
                await self.client.decline(offer["id"], SHORT_DECLINE if soon else self.flags.decline_offer_duration)
                if not soon:
                    self._declined = True

    def _task_info(self, job: Any, run: Run, offer: dict[str, Any], use: Resources) -> dict[str, Any]:
        env = jobs.task_env(job, task_id=run.task_id, host=offer.get("hostname", ""),
                            due_millis=round(run.due * 1000), attempt=run.attempt)
        command: dict[str, Any] = {
            "shell": job.shell,
            "value": job.command + (f" {run.extra}" if run.extra else ""),
            "environment": {"variables": [{"name": k, "value": v} for k, v in env.items()]},
            "user": job.run_as_user,
        }
        if not job.shell:
            command["arguments"] = [job.command, *job.arguments]
        if job.fetch:
            command["uris"] = [{"value": f["uri"], "executable": bool(f.get("executable")),
                                "cache": bool(f.get("cache")), "extract": bool(f.get("extract", True)),
                                **({"output_file": f["output_file"]} if f.get("output_file") else {})}
                               for f in job.fetch]
        info: dict[str, Any] = {
            "name": f"ChronosTask:{job.name}", "task_id": {"value": run.task_id}, "agent_id": offer["agent_id"],
            "resources": use.to_json(), "command": command,
        }
        if job.container:
            c = job.container
            info["container"] = {"type": str(c.get("type", "DOCKER")).upper(),
                                 "docker": {"image": c.get("image"), "network": str(c.get("network", "HOST")).upper(),
                                            "force_pull_image": str(c.get("forcePullImage", False)).lower() == "true",
                                            "parameters": c.get("parameters") or []},
                                 "volumes": [{"container_path": v.get("containerPath"), "host_path": v.get("hostPath"),
                                              "mode": v.get("mode", "RW")} for v in c.get("volumes") or []]}
        if job.max_completion_time:
            info["max_completion_time"] = {"nanoseconds": int(job.max_completion_time * 1e9)}
        return info

    async def _update(self, status: dict[str, Any]) -> None:
        assert self.client is not None
        task_id = status["task_id"]["value"]
        state = status.get("state", "")
        now = self.clock.now()
        rec = self.running.get(task_id)
        parsed = jobs.parse_task_id(task_id)
        if rec is not None and state in ("TASK_STARTING", "TASK_RUNNING") and not rec.start:
            rec = dataclasses.replace(rec, start=now)
            self.running[task_id] = rec
            await self.store.put(f"chronos/running/{task_id}", json.dumps(dataclasses.asdict(rec)).encode())
        elif rec is not None and state in TERMINAL:
            outcome = "success" if state in SUCCESS else "killed" if state == "TASK_KILLED" else "failure"
            done = dataclasses.replace(rec, end=now, start=rec.start or now, status=outcome,
                                       exit_message=status.get("message", ""))
            del self.running[task_id]
            hist = self._history.setdefault(rec.job_name, deque(maxlen=self.flags.max_history))
            hist.append(done)
            await self.store.put_many({
                f"chronos/running/{task_id}": None,
                f"chronos/history/{_key(rec.job_name)}": json.dumps([dataclasses.asdict(r) for r in hist]).encode(),
            })
            job = self._jobs.get(rec.job_name)
            if job is not None and parsed is not None:
                if state in SUCCESS and not job.async_:
                    await self._succeeded(job, done, now)
                elif state in FAILURE:
                    await self._failed(job, parsed[1], parsed[3], now)
            self._wake.set()
        elif rec is None and state not in TERMINAL and "agent_id" in status:
            await self.client.call("KILL", {"task_id": status["task_id"], "agent_id": status["agent_id"]})
        if "uuid" in status and "agent_id" in status:
            await self.client.call("ACKNOWLEDGE", {"agent_id": status["agent_id"], "task_id": status["task_id"],
                                                   "uuid": status["uuid"]})

    async def _succeeded(self, job: Any, run: RunRecord | None, now: float) -> None:
        job = jobs.with_counters(job, success_count=job.success_count + 1, errors_since_last_success=0,
                                 last_success=jobs.timestamp(now))
        if job.schedule and job.schedule.startswith("R0/"):
            job = jobs.with_counters(job, disabled=True)  # exhausted all of its recurrences
        await self._save_job(job)
        await self._fire_children(job.name, now)

    async def _failed(self, job: Any, attempt: int, args: str, now: float) -> None:
        fresh_failure = not job.last_error or job.last_success >= job.last_error
        if attempt < job.retries and fresh_failure:
            await self._enqueue(job, due=now + self.flags.failure_retry, attempt=attempt + 1, args=args,
                                not_before=now + self.flags.failure_retry)  # the retry's due time, as Chronos
            return
        changes: dict[str, Any] = {"error_count": job.error_count + 1,
                                   "errors_since_last_success": job.errors_since_last_success + 1,
                                   "last_error": jobs.timestamp(now)}
        if self.flags.disable_after_failures and \
                job.errors_since_last_success + 1 >= self.flags.disable_after_failures:
            changes["disabled"] = True
        job = jobs.with_counters(job, **changes)
        await self._save_job(job)
        if job.soft_error:
            await self._fire_children(job.name, now)

    async def _save_job(self, job: Any) -> None:
        await self.store.put(f"chronos/jobs/{_key(job.name)}", json.dumps(job.raw).encode())
        self._jobs[job.name] = job
        if job.disabled:
            self._push(job.name)  # drops it from the heap

    async def _fire_children(self, name: str, now: float) -> None:
        for child_name in self.graph.parent_succeeded(name):
            child = self._jobs.get(child_name)
            if child is not None and not child.disabled and self._may_start(child):
                await self._enqueue(child, due=now, attempt=0, args=" ".join(child.arguments))
        await self.store.put("chronos/graph", json.dumps(self.graph.to_json()).encode())


def advance(job: Any, now: float, may_start: bool) -> tuple[Any, Run | None, int]:
    """A scheduled job whose instant has come: the job with its schedule advanced past
    `now`, the run to queue (None when the occurrence is skipped, or when the job may not
    start because a run of it is already going and it is not `concurrent`), and how many
    occurrences were skipped for being later than `epsilon`."""
    s = sched.parse_schedule(job.schedule, time_zone=job.schedule_time_zone, now=now)
    decision = sched.due(s, now, job.epsilon)
    new_job = jobs.with_schedule(job, sched.format_schedule(decision.next), job.schedule_time_zone)
    run: Run | None = None
    if decision.run_at is not None and may_start:
        args = " ".join(job.arguments)
        run = Run(jobs.task_id(round(decision.run_at * 1000), 0, job.name, args), job.name, decision.run_at,
                  0, args, now)
    return new_job, run, decision.skipped


def _constraints_ok(constraints: list[list[str]], attrs: dict[str, str]) -> bool:
    """Chronos constraints: EQUALS, LIKE and UNLIKE (whole-value regexes); others are ignored."""
    import re

    for c in constraints:
        if len(c) != 3:
            continue
        field, op, value = c
        have = attrs.get(field)
        if op == "EQUALS" and have != value:
            return False
        if op == "LIKE" and (have is None or re.fullmatch(value, have) is None):
            return False
        if op == "UNLIKE" and have is not None and re.fullmatch(value, have) is not None:
            return False
    return True
