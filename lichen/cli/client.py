"""What the client verbs (`lichen app`, `task`, `deployment`, `job`) share.

- Finding the APIs: `--master` / `--marathon` / `--chronos` on each group, else the
  `LICHEN_MASTER` / `LICHEN_MARATHON` / `LICHEN_CHRONOS` environment variables, else the
  addresses `lichen up` serves on. `host:port` without a scheme means `http://host:port`.
- HTTP: `Api` is a small synchronous JSON client (the verbs make one request at a time).
  Every failure becomes a `CliError` (exit code 1) carrying a message fit for a person:
  `cannot reach Marathon at URL: ...` when nothing answers, the API's own `message`
  (plus each `details` path and its errors for a 422) when it answers with an error.
- Output: `print_json` prints the API's own JSON (for scripts, `--json`); `print_table`
  prints a rich table (for people).
- Waiting: `wait_for_deployment` polls `/v2/deployments` and shows the step and the
  affected apps' task counts live until the deployment ends.

How a deployment's end is told. Marathon removes a deployment from `/v2/deployments` both
when it succeeds and when it is cancelled or rolled back. A cancelled one leaves its app
with a *different* deployment in progress (the rollback), so: gone, and every affected
app either gone (a removal) or with no deployment in progress = success; gone while an
affected app is still being deployed by another deployment = failed or cancelled.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, NoReturn, Self

import click
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

DEFAULT_MASTER = "http://127.0.0.1:5050"
DEFAULT_MARATHON = "http://127.0.0.1:8080"
DEFAULT_CHRONOS = "http://127.0.0.1:4400"
REQUEST_TIMEOUT = 30.0      # seconds one HTTP request may take
POLL_INTERVAL = 0.5         # seconds between polls while waiting for a deployment
_WIDE = 200                 # table width when stdout is not a terminal (nothing gets cut)


class CliError(click.ClickException):
    """A failure the user can act on: printed as is on stderr, exit code 1."""

    exit_code = 1

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(self.format_message(), err=True)


def fail(message: str) -> NoReturn:
    raise CliError(message)


# --- finding the APIs -----------------------------------------------------------------


def base_url(value: str) -> str:
    """`host:port` or a URL, as a URL without a trailing slash."""
    value = value.strip()
    if not value:
        raise click.BadParameter("an empty address")
    if "://" not in value:
        value = "http://" + value
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class Endpoints:
    master: str
    marathon: str
    chronos: str

    @classmethod
    def resolve(cls, master: str | None, marathon: str | None, chronos: str | None,
                env: Mapping[str, str] | None = None) -> Endpoints:
        """Options first, then the LICHEN_* environment variables, then `lichen up`'s defaults."""
        env = os.environ if env is None else env
        return cls(
            master=base_url(master or env.get("LICHEN_MASTER") or DEFAULT_MASTER),
            marathon=base_url(marathon or env.get("LICHEN_MARATHON") or DEFAULT_MARATHON),
            chronos=base_url(chronos or env.get("LICHEN_CHRONOS") or DEFAULT_CHRONOS),
        )


def endpoint_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The `--master`, `--marathon`, `--chronos` options of a command group."""
    f = click.option("--chronos", default=None, metavar="URL",
                     help=f"Chronos API (env LICHEN_CHRONOS; default {DEFAULT_CHRONOS}).")(f)
    f = click.option("--marathon", default=None, metavar="URL",
                     help=f"Marathon API (env LICHEN_MARATHON; default {DEFAULT_MARATHON}).")(f)
    f = click.option("--master", default=None, metavar="URL",
                     help=f"Mesos master (env LICHEN_MASTER; default {DEFAULT_MASTER}).")(f)
    return f


def endpoints_from(ctx: click.Context, master: str | None, marathon: str | None,
                   chronos: str | None) -> None:
    """Store the resolved endpoints as the group's context object."""
    ctx.obj = Endpoints.resolve(master, marathon, chronos)


def _endpoints() -> Endpoints:
    found = click.get_current_context().find_object(Endpoints)
    return found if found is not None else Endpoints.resolve(None, None, None)


def marathon_api() -> Api:
    return Api(_endpoints().marathon, "Marathon")


def master_api() -> Api:
    return Api(_endpoints().master, "the Mesos master")


def chronos_api() -> Api:
    return Api(_endpoints().chronos, "Chronos")


json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")


# --- HTTP -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: Any              # parsed JSON, or None for an empty body


def app_path(app_id: str) -> str:
    """`/v2/apps/<id>` for an app id given with or without its leading slash."""
    return "/v2/apps" + quote_id(app_id)


def normalize_id(app_id: str) -> str:
    """An absolute Marathon id: `web` -> `/web`, `//a//b/` -> `/a/b`."""
    parts = [p for p in app_id.split("/") if p]
    return "/" + "/".join(parts)


def quote_id(app_id: str) -> str:
    return urllib.parse.quote(normalize_id(app_id), safe="/")


class Api:
    """A JSON HTTP API at `url`, named `name` in error messages."""

    def __init__(self, url: str, name: str, timeout: float = REQUEST_TIMEOUT) -> None:
        self.url = url
        self.name = name
        self.timeout = timeout

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        return self.request("GET", path, params)

    def request(self, method: str, path: str, params: Mapping[str, Any] | None = None,
                body: Any = None, *, allow_404: bool = False) -> Response:
        """Send one request; return the response, or raise CliError for any failure.

        With `allow_404`, a 404 is returned (body None) instead of raised.
        """
        url, status, headers, raw = self._exchange(method, path, params, body, allow_404=allow_404)
        if status == 404 and allow_404:
            return Response(404, headers, None)
        return Response(status, headers, _parse(raw, url))

    def get_text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """GET a plain-text body (e.g. Chronos's graphs); failures as in `request`."""
        _, _, _, raw = self._exchange("GET", path, params, None, accept="text/plain, */*")
        return raw.decode("utf-8", errors="replace")

    def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any, *,
                  allow_404: bool = False, accept: str = "application/json",
                  ) -> tuple[str, int, dict[str, str], bytes]:
        """One HTTP exchange: (url, status, headers, raw body) of a success; CliError otherwise."""
        url = self.url + path
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", accept)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return url, resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            if allow_404 and e.code == 404:
                return url, 404, dict(e.headers.items()), b""
            fail(self.error_message(e.code, raw))
        except urllib.error.URLError as e:
            fail(f"cannot reach {self.name} at {self.url}: {_reason(e.reason)}")
        except (TimeoutError, ConnectionError, OSError) as e:
            fail(f"cannot reach {self.name} at {self.url}: {_reason(e)}")

    def error_message(self, status: int, raw: bytes) -> str:
        """The API's error body as lines a person reads."""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or "message" not in body:
            text = raw.decode("utf-8", errors="replace").strip()
            return f"{self.name} answered {status}" + (f": {text}" if text else "")
        lines = [f"{self.name}: {body['message']}"]
        details = body.get("details")
        if isinstance(details, list):
            for d in details:
                if isinstance(d, dict):
                    errors = d.get("errors") or []
                    lines.append(f"  {d.get('path', '/')}: {'; '.join(str(x) for x in errors)}")
                else:
                    lines.append(f"  {d}")
        elif details:
            lines.append(f"  {details}")
        for dep in body.get("deployments") or []:
            if isinstance(dep, dict) and "id" in dep:
                lines.append(f"  deployment {dep['id']} (see `lichen deployment list`; --force overrides)")
        return "\n".join(lines)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse(raw: bytes, url: str) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        fail(f"{url} did not answer JSON: {raw[:200].decode('utf-8', errors='replace')}")


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return "timed out"
    return str(reason)


# --- output -----------------------------------------------------------------------------


def _console(stderr: bool) -> Console:
    console = Console(stderr=stderr)
    if not console.is_terminal:       # a pipe or a file: no width to fit, so cut nothing
        console = Console(stderr=stderr, width=_WIDE)
    return console


def stdout_console() -> Console:
    return _console(stderr=False)


def stderr_console() -> Console:
    return _console(stderr=True)


def print_json(body: Any) -> None:
    click.echo(json.dumps(body, indent=2, sort_keys=False))


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    table = Table(*columns, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    stdout_console().print(table)


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs:
        table.add_row(key, _cell(value))
    stdout_console().print(table)


def _cell(value: Any) -> Text:
    if value is None:
        return Text("-")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value))
    return Text(str(value))


def say(message: str) -> None:
    """A line for the person at the terminal (stderr, so --json output stays clean)."""
    click.echo(message, err=True)


# --- waiting for a deployment -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppProgress:
    app_id: str
    instances: int | None          # None: the app is gone
    running: int
    healthy: int
    deployment_ids: tuple[str, ...]
    health_checked: bool = False


def app_progress(api: Api, app_id: str) -> AppProgress:
    """The app's counts; an app that no longer exists has `instances` None."""
    resp = api.request("GET", app_path(app_id), allow_404=True)
    if resp.status == 404:
        return AppProgress(app_id, None, 0, 0, ())
    app = (resp.body or {}).get("app") or {}
    return AppProgress(
        app_id=str(app.get("id", app_id)),
        instances=int(app.get("instances", 0)),
        running=int(app.get("tasksRunning", 0)),
        healthy=int(app.get("tasksHealthy", 0)),
        deployment_ids=tuple(str(d.get("id")) for d in app.get("deployments") or [] if isinstance(d, dict)),
        health_checked=bool(app.get("healthChecks")),
    )


def find_deployment(deployments: Any, deployment_id: str) -> dict[str, Any] | None:
    for d in deployments if isinstance(deployments, list) else []:
        if isinstance(d, dict) and d.get("id") == deployment_id:
            return d
    return None


def deployment_outcome(deployment_id: str, apps: Sequence[AppProgress]) -> str | None:
    """None if the (vanished) deployment succeeded, else why it counts as failed."""
    others = sorted({d for a in apps if a.instances is not None for d in a.deployment_ids} - {deployment_id})
    if others:
        return (f"deployment {deployment_id} failed or was cancelled: "
                f"{', '.join(a.app_id for a in apps if a.deployment_ids)} now in deployment {', '.join(others)}")
    return None


def describe_step(deployment: Mapping[str, Any]) -> str:
    actions = deployment.get("currentActions") or []
    what = ", ".join(f"{a.get('action', '?')} {a.get('app', '')}".strip() for a in actions if isinstance(a, dict))
    step = f"step {deployment.get('currentStep', '?')}/{deployment.get('totalSteps', '?')}"
    return f"{step}: {what}" if what else step


def _render(deployment_id: str, step: str, apps: Sequence[AppProgress], elapsed: float) -> Group:
    head = Text.assemble(("Deployment ", "bold"), (deployment_id, "cyan"), f"  {step}  ({elapsed:.0f}s)")
    table = Table("APP", "RUNNING", "HEALTHY", "INSTANCES", box=None, header_style="bold", pad_edge=False)
    for a in apps:
        if a.instances is None:
            table.add_row(a.app_id, "-", "-", "removed")
        else:
            healthy = f"{a.healthy}/{a.instances}" if a.health_checked else "-"
            table.add_row(a.app_id, f"{a.running}/{a.instances}", healthy, str(a.instances))
    return Group(head, table)


class _Display:
    """Live progress on a terminal; on anything else, one line per new step and the final table."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = Live(console=console, refresh_per_second=4) if console.is_terminal else None
        self.last_step = ""

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, deployment_id: str, step: str, apps: Sequence[AppProgress], elapsed: float,
               final: bool = False) -> None:
        if self.live is not None:
            self.live.update(_render(deployment_id, step, apps, elapsed), refresh=True)
        elif final:
            self.console.print(_render(deployment_id, step, apps, elapsed))
        elif step != self.last_step:
            self.console.print(f"deployment {deployment_id}: {step}", highlight=False)
        self.last_step = step


def wait_for_deployment(api: Api, deployment_id: str, app_ids: Sequence[str] = (), *,
                        timeout: float | None = None, interval: float = POLL_INTERVAL) -> None:
    """Show the deployment's progress until it ends; CliError if it failed or timed out.

    `app_ids` are the apps it affects (taken from the deployment itself when it is seen).
    Ctrl-C stops waiting (exit 130); the deployment goes on.
    """
    start = time.monotonic()
    apps_watched = [normalize_id(a) for a in app_ids]
    step = "waiting"
    try:
        with _Display(stderr_console()) as display:
            while True:
                deployment = find_deployment(api.get("/v2/deployments").body, deployment_id)
                if deployment is not None:
                    step = describe_step(deployment)
                    for a in deployment.get("affectedApps") or []:
                        if normalize_id(str(a)) not in apps_watched:
                            apps_watched.append(normalize_id(str(a)))
                progress = [app_progress(api, a) for a in apps_watched]
                elapsed = time.monotonic() - start
                if deployment is None and not any(deployment_id in p.deployment_ids for p in progress):
                    why = deployment_outcome(deployment_id, progress)
                    display.update(deployment_id, "failed" if why else "done", progress, elapsed, final=True)
                    if why:
                        fail(why)
                    break
                display.update(deployment_id, step, progress, elapsed)
                if timeout is not None and elapsed > timeout:
                    fail(f"timed out after {timeout:g}s waiting for deployment {deployment_id} ({step}); "
                         f"it goes on (lichen deployment watch {deployment_id})")
                time.sleep(interval)
    except KeyboardInterrupt:
        say(f"stopped waiting; deployment {deployment_id} goes on (lichen deployment watch {deployment_id})")
        sys.exit(130)
    say(f"deployment {deployment_id} succeeded")


def deployment_id_of(resp: Response) -> str | None:
    """The deployment a change started: the body's deploymentId, the header, or the app's list."""
    body = resp.body if isinstance(resp.body, dict) else {}
    if body.get("deploymentId"):
        return str(body["deploymentId"])
    for key, value in resp.headers.items():
        if key.lower() == "marathon-deployment-id" and value:
            return value
    deployments = body.get("deployments") or []
    if deployments and isinstance(deployments[0], dict) and deployments[0].get("id"):
        return str(deployments[0]["id"])
    return None


def wait_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--no-wait` and `--timeout` for the verbs that start a deployment."""
    f = click.option("--timeout", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
                     help="Give up waiting after this long (default: wait until it ends).")(f)
    f = click.option("--no-wait", is_flag=True, help="Return once the change is accepted.")(f)
    return f


def finish_change(api: Api, resp: Response, app_ids: Sequence[str], *, as_json: bool, no_wait: bool,
                  timeout: float | None, summary: str) -> None:
    """Print what a change returned, then wait for its deployment unless told not to."""
    deployment_id = deployment_id_of(resp)
    if as_json:
        print_json(resp.body)
    else:
        click.echo(summary + (f" (deployment {deployment_id})" if deployment_id else ""))
    if no_wait or deployment_id is None:
        return
    wait_for_deployment(api, deployment_id, app_ids, timeout=timeout)
