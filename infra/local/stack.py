"""`make run`: the whole system on 127.0.0.1 with no AWS account.

    python -m infra.local.stack --port 3000 [--data-dir .deflect-data]

One process holds: a moto server (state machines executed, resources created from template.yaml), the
real handlers (Step Functions' Lambda invokes routed to them in-process), an API Gateway stand-in with a dev
token issuer, SQS pollers for the queue-triggered functions, and a seeded demo tenant. Once it serves requests
it prepares the starter intent head in the background (infra/local/warmup.py; trained on the first run only).

Python: `start_stack(port=0, data_dir=...)` returns a handle (`.base_url`, `.tokens`, `.resources`, `.stop()`);
`separate_process=True` runs the same thing as a child process (what the e2e tests use, so moto's in-memory
state and the process environment never mix with the test process).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.local import template as tpl
from infra.local.resources import ACCOUNT, REGION, LocalResources

DEFAULT_DATA_DIR = Path(".deflect-data")
READY_FILE = "stack.json"

# Start-up hooks, "module:function", called in order with the running Stack once the demo tenant is seeded.
# A hook may call stack.note(...) for the banner, stack.set_env(...) and stack.on_stop(...). A hook whose
# module is not in this build is skipped. Add yours with one line.
STARTUP_HOOKS: list[str] = [
    "infra.local.helpdesks:stack_hook",  # local Zendesk/Intercom/Freshdesk/JSM servers
    "infra.local.helpcenter:stack_hook",  # demo help center loaded into the knowledge index
    "infra.local.knowledge_sync:stack_hook",  # the kept index loses articles the restarted store no longer has
]


def _setting_names() -> set[str]:
    from deflect.settings import Settings

    return {field.alias for field in Settings.model_fields.values() if field.alias}


_running_lock = threading.Lock()
_running: Stack | None = None


@dataclass
class Stack:
    """A running local stack in this process."""

    base_url: str
    moto_url: str
    data_dir: Path
    resources: LocalResources
    tokens: dict[str, str]
    webhook_secrets: dict[str, str]
    functions: Any
    emulator: str
    started_s: float
    notes: list[str] = field(default_factory=list)
    api: Any = None
    warmup: Any = None  # infra.local.warmup.StarterWarmup, started once the hooks have run
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _saved_env: dict[str, str | None] = field(default_factory=dict)

    def note(self, line: str) -> None:
        """A line for the start-up banner (hooks say what they started and how to use it)."""
        self.notes.append(line)

    def on_stop(self, stopper: Callable[[], None]) -> None:
        self._stoppers.append(stopper)

    def set_env(self, values: dict[str, str]) -> None:
        """Set variables the handlers read, then rebuild the composition root so they take effect."""
        _set_env(self._saved_env, values)
        from deflect import bootstrap

        bootstrap.reset()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "base_url": self.base_url,
            "moto_url": self.moto_url,
            "data_dir": str(self.data_dir),
            "emulator": self.emulator,
            "tokens": self.tokens,
            "webhook_secrets": self.webhook_secrets,
            "resources": asdict(self.resources),
            "started_s": self.started_s,
            # What `deflect --local ...` needs to reach this stack's moto with the application's own settings.
            "environment": {
                k: v
                for k, v in os.environ.items()
                if k.startswith(("AWS_", "DEFLECT_", "POWERTOOLS_")) or k in _setting_names()
            },
        }

    def stop(self) -> None:
        global _running
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                traceback.print_exc()
        _restore(self._saved_env)
        self._saved_env.clear()
        from deflect import bootstrap

        bootstrap.reset()
        with _running_lock:
            if _running is self:
                _running = None


@dataclass
class ChildStack:
    """A local stack running as a child process; same attributes as Stack, read from its ready file."""

    base_url: str
    moto_url: str
    data_dir: Path
    resources: LocalResources
    tokens: dict[str, str]
    webhook_secrets: dict[str, str]
    emulator: str
    started_s: float
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> bool:
        """SIGTERM, then a kill after 15 s. True when the stack stopped on its own (it shuts down cleanly)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_stack(
    port: int = 0,
    data_dir: Path | str = DEFAULT_DATA_DIR,
    *,
    separate_process: bool = False,
    quiet: bool = False,
    timeout_s: float = 90.0,
    warm_up: bool | None = None,
) -> Stack | ChildStack:
    """`warm_up`: prepare the starter intent head in the background once ready (infra/local/warmup.py). By default
    a stack that is its own process does (`make run`, `separate_process=True`); one started inside the caller's
    process (a benchmark) does not, so no training runs beside what the caller measures."""
    data_dir = Path(data_dir).resolve()
    if separate_process:
        return _spawn(port, data_dir, timeout_s, warm_up=warm_up is not False)
    return _start_here(port, data_dir, quiet=quiet, warm_up=bool(warm_up))


# ---------------------------------------------------------------------------------------------- in process
def _start_here(port: int, data_dir: Path, *, quiet: bool, warm_up: bool = True) -> Stack:
    global _running
    with _running_lock:
        if _running is not None:
            raise RuntimeError("a local stack already runs in this process (moto's state is process-wide)")
        started = time.perf_counter()
        data_dir.mkdir(parents=True, exist_ok=True)
        stoppers: list[Callable[[], None]] = []
        saved_env: dict[str, str | None] = {}
        try:
            stack = _boot(port, data_dir, quiet, stoppers, saved_env, started)
        except BaseException:
            for stopper in reversed(stoppers):
                try:
                    stopper()
                except Exception:
                    traceback.print_exc()
            _restore(saved_env)
            raise
        _running = stack
    _run_hooks(stack)
    if warm_up:
        _start_warmup(stack)
    stack.started_s = round(time.perf_counter() - started, 3)  # ready: the hooks' work included
    (data_dir / READY_FILE).write_text(json.dumps(stack.describe(), indent=2))
    stack.on_stop(lambda: (data_dir / READY_FILE).unlink(missing_ok=True))
    return stack


def _boot(
    port: int,
    data_dir: Path,
    quiet: bool,
    stoppers: list[Callable[[], None]],
    saved_env: dict[str, str | None],
    started: float,
) -> Stack:
    import boto3
    import moto
    from moto.server import ThreadedMotoServer

    from deflect import bootstrap
    from infra.local import lambda_router
    from infra.local.api import LocalApi, serve
    from infra.local.dev_issuer import DevIssuer
    from infra.local.functions import LocalFunctions
    from infra.local.import_trigger import ObjectCreatedPoller
    from infra.local.moto_patches import dynamodb_serialised, sfn_token_per_attempt
    from infra.local.openapi import DOCS_HTML, merged_document
    from infra.local.pollers import Poller, SqsPoller
    from infra.local.resources import create_all
    from infra.local.seed import seed_demo_tenant

    if os.environ.get("DEFLECT_RECORD_AWS_CALLS"):
        from infra.local import aws_calls

        aws_calls.install(os.environ["DEFLECT_RECORD_AWS_CALLS"])
    # 1. moto, on loopback only, with state machines executed and Lambda without Docker.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per moto call drowns the banner
    # moto's DynamoDB loses concurrent writes when a transaction rolls back: serialise it like the real service.
    serialised = dynamodb_serialised()
    serialised.__enter__()
    stoppers.append(lambda: serialised.__exit__(None, None, None))
    # moto keeps one task token across a waitForTaskToken task's retries and accepts a failed attempt's: AWS does not.
    per_attempt = sfn_token_per_attempt()
    per_attempt.__enter__()
    stoppers.append(lambda: per_attempt.__exit__(None, None, None))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    stoppers.append(server.stop)
    moto_port = server.get_host_and_port()[1]
    moto_url = f"http://127.0.0.1:{moto_port}"
    stoppers.append(lambda: _post(moto_url + "/moto-api/reset", {}))  # moto's state is process-wide
    _post(
        moto_url + "/moto-api/config",
        {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}},
    )
    emulator = f"moto {moto.__version__}"

    # 2. This process talks to moto like a Lambda talks to AWS: endpoint + dummy credentials.
    _set_env(
        saved_env,
        {
            "AWS_ENDPOINT_URL": moto_url,
            "MOTO_PORT": str(moto_port),  # moto's state-machine interpreter calls back on this port
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_PROFILE": None,
            "AWS_SESSION_TOKEN": None,
        },
    )
    session = boto3.session.Session(region_name=REGION)
    resources = create_all(session)

    # 3. Handlers share this process, so their environment is the union of every function's (same names).
    env: dict[str, str] = {}
    for name in tpl.functions():
        for key, value in resources.environment(name).items():
            if key in env and env[key] != value:
                print(
                    f"[stack] {name} sets {key} differently from another function; keeping the first",
                    file=sys.stderr,
                )
            env.setdefault(key, value)
    env.update(
        {
            "DEFLECT_EMULATOR": emulator,
            "DEFLECT_LOCAL_DATA_DIR": str(data_dir),
            "KNOWLEDGE_DATA_DIR": str(data_dir / "knowledge"),
            "MODEL_DATA_DIR": str(data_dir / "models"),
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
        }
    )
    _set_env(saved_env, env)
    bootstrap.reset()
    stoppers.append(bootstrap.reset)

    # 4. The real handlers, behind Step Functions' Lambda invokes and the API.
    functions = LocalFunctions()
    functions.load_all()
    stoppers.append(lambda_router.install(functions))

    issuer = DevIssuer.in_dir(data_dir)
    tokens, secrets = seed_demo_tenant(bootstrap.container(), data_dir, issuer)

    stage = str(resources.resolve({"Ref": "Stage"}))
    max_body = int(resources.resolve({"Ref": "MaxRequestBodyBytes"}))
    document: dict[str, Any] = {}
    api = LocalApi(functions, issuer, stage=stage, max_body_bytes=max_body)
    http_server, http_port = serve(api, port, quiet=quiet)
    stoppers.append(http_server.server_close)
    stoppers.append(http_server.shutdown)
    base_url = f"http://127.0.0.1:{http_port}"

    def openapi() -> tuple[int, list[tuple[str, str]], bytes]:
        if not document:
            document.update(merged_document(functions, base_url))
        return 200, [("Content-Type", "application/json")], json.dumps(document).encode()

    api.extra_routes[("GET", "/v1/openapi.json")] = openapi
    api.extra_routes[("GET", "/v1/docs")] = lambda: (
        200,
        [("Content-Type", "text/html; charset=utf-8")],
        DOCS_HTML.encode(),
    )

    # 5. Queue consumers, like Lambda's SQS event source mappings.
    sqs = session.client("sqs")
    pollers: list[Poller] = []
    for name, spec in tpl.functions().items():
        for queue in spec.sqs_queues:
            poller = SqsPoller(
                sqs,
                name,
                resources.queues[queue],
                resources.queue_arns[queue],
                functions.invoke,
                batch_size=_batch_size(name, queue),
            )
            poller.start()
            stoppers.append(poller.stop)
            pollers.append(poller)
    # ... and S3 triggers (the knowledge import bucket), like S3 event notifications.
    s3 = session.client("s3")
    for name, spec in tpl.functions().items():
        for bucket in spec.s3_buckets:
            trigger = ObjectCreatedPoller(s3, resources.buckets[bucket], name, functions.invoke)
            trigger.start()
            stoppers.append(trigger.stop)
            pollers.append(trigger)
    # Stopping runs last-in first: every poller is told at once, so their long polls end together, not in turn.
    stoppers.append(lambda: [p.request_stop() for p in pollers])

    return Stack(
        base_url=base_url,
        moto_url=moto_url,
        data_dir=data_dir,
        resources=resources,
        tokens=tokens,
        webhook_secrets=secrets,
        functions=functions,
        emulator=emulator,
        started_s=round(time.perf_counter() - started, 3),
        api=api,
        _stoppers=stoppers,
        _saved_env=saved_env,
    )


def _set_env(saved: dict[str, str | None], values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        saved.setdefault(key, os.environ.get(key))
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _restore(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _post(url: str, body: dict[str, Any]) -> None:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the local stack only talks to its own moto server")
    request = urllib.request.Request(  # noqa: S310 - loopback http only, checked above
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback http only
        answer.read()


def _batch_size(function: str, queue: str) -> int:
    events = tpl.resources("AWS::Serverless::Function")[function]["Properties"].get("Events", {})
    for event in events.values():
        props = event.get("Properties", {})
        if event["Type"] == "SQS" and props.get("Queue", {}).get("Fn::GetAtt", [None])[0] == queue:
            return int(props.get("BatchSize", 10))
    return 10


def _start_warmup(stack: Stack) -> None:
    """After the hooks (one may rebuild the composition root): prepare the container triage will use, and show its
    state in `GET /v1/health` under `warmup`."""
    from deflect import bootstrap
    from infra.local import warmup

    try:
        stack.warmup = warmup.start(bootstrap.container())
    except Exception as error:  # the first triage trains the head itself, as before
        traceback.print_exc()
        stack.note(f"starter intent head warm-up failed to start: {type(error).__name__}: {error}")
        return
    if stack.warmup is not None and stack.api is not None:
        found = stack.warmup
        stack.api.annotations[("GET", "/v1/health")] = lambda: {"warmup": {warmup.STARTER: found.health()}}


def _run_hooks(stack: Stack) -> None:
    for entry in STARTUP_HOOKS:
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as missing:
            if missing.name and module_name.startswith(missing.name):
                continue  # that capability is not in this build yet
            raise
        try:
            getattr(module, attr or "stack_hook")(stack)
        except Exception as error:
            traceback.print_exc()
            stack.note(f"start-up hook {entry} failed: {type(error).__name__}: {error}")


# ---------------------------------------------------------------------------------------------- child process
def _spawn(port: int, data_dir: Path, timeout_s: float, *, warm_up: bool = True) -> ChildStack:
    data_dir.mkdir(parents=True, exist_ok=True)
    ready = data_dir / READY_FILE
    ready.unlink(missing_ok=True)
    log_path = data_dir / "stack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own module with our own interpreter
            [
                sys.executable,
                "-m",
                "infra.local.stack",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--quiet",
                *([] if warm_up else ["--no-warm-up"]),
            ],
            cwd=tpl.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(tpl.ROOT / "layers" / "core"), str(tpl.ROOT)]),
            },
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"local stack exited with {process.returncode}:\n{log_path.read_text(errors='replace')}"
            )
        if ready.exists():
            try:
                info = json.loads(ready.read_text())
            except json.JSONDecodeError:
                info = {}
            if info.get("pid") == process.pid:
                return ChildStack(
                    base_url=info["base_url"],
                    moto_url=info["moto_url"],
                    data_dir=data_dir,
                    resources=LocalResources(**info["resources"]),
                    tokens=info["tokens"],
                    webhook_secrets=info["webhook_secrets"],
                    emulator=info["emulator"],
                    started_s=info["started_s"],
                    process=process,
                    log_path=log_path,
                )
        time.sleep(0.1)
    process.kill()
    raise TimeoutError(f"local stack not ready after {timeout_s}s:\n{log_path.read_text(errors='replace')}")


# ---------------------------------------------------------------------------------------------- make run
def banner(stack: Stack) -> str:
    r = stack.resources
    data = stack.data_dir
    try:
        shown = data.relative_to(Path.cwd())
    except ValueError:
        shown = data
    pollers = ", ".join(f"{q} → {name}" for name, spec in tpl.functions().items() for q in spec.sqs_queues)
    triggers = ", ".join(
        f"s3://{r.buckets[b]}/tenant={{t}}/ → {name}"
        for name, spec in tpl.functions().items()
        for b in spec.s3_buckets
    )
    machines = ", ".join(r.state_machines)
    lines = [
        "",
        f"Deflect local stack — ready in {stack.started_s:.1f}s, everything on 127.0.0.1 ({stack.emulator})",
        "",
        f"  API            {stack.base_url}   routes from template.yaml, real handlers in this process",
        f"                 docs {stack.base_url}/v1/docs   spec {stack.base_url}/v1/openapi.json",
        f"  AWS (moto)     {stack.moto_url}   tables {', '.join(r.tables)}; buckets {', '.join(r.buckets.values())}",
        f"                 queues {', '.join(r.queues)}; credentials: any dummy values, region {REGION}",
        f"  Step Functions {machines} (Lambda tasks call the real handlers)",
        f"  Queue pollers  {pollers}",
        f"  S3 triggers    {triggers} (drop .md, .jsonl or a Zendesk export to import knowledge)",
        f"  Demo tenant    demo — config and webhook secrets seeded; secrets in {shown}/demo-secrets.json",
        "                 rollout `assist`: drafts reach agents as internal notes; to answer customers directly:",
        '                 echo \'{"rollout_default": "auto"}\' | deflect --local policy set --tenant demo -',
    ]
    if stack.functions.load_errors:
        for name, error in stack.functions.load_errors.items():
            lines.append(f"  !! {name} failed to load: {error} (its routes answer 502)")
    lines += [f"  {n}" for n in stack.notes]
    warming = stack.warmup.banner_line(shown) if stack.warmup else None
    if warming:
        lines.append(f"  {warming}")
    lines += ["", f"  Dev tokens (tenant demo; also in {shown}/tokens.json):"]
    lines += [f"    {role:<10} {token}" for role, token in stack.tokens.items()]
    if "approver2" in stack.tokens:
        lines.append(
            "    (approver and approver2 are two people: a refund above the two-person line needs both)"
        )
    lines += [
        "",
        "  Try:",
        f"    curl {stack.base_url}/v1/health",
        f'    TOKEN=$(python3 -c \'import json; print(json.load(open("{shown}/tokens.json"))["tokens"]["agent"])\')',
        f'    curl -H "Authorization: Bearer $TOKEN" {stack.base_url}/v1/tasks',
        f'    KEY=$(python3 -c \'import json; print(json.load(open("{shown}/demo-api-key.json"))["api_key"])\')',
        f'    curl -H "X-Api-Key: $KEY" -H "Content-Type: application/json" {stack.base_url}/v1/conversations \\',
        """      -d '{"message": "How do I install the CLI?", "requester": {"email": "you@example.com"}}'""",
        f"    AWS_ENDPOINT_URL={stack.moto_url} AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x \\",
        f"      aws dynamodb query --region {REGION} --table-name SupportTable \\",
        '      --key-condition-expression \'PK = :pk\' --expression-attribute-values \'{":pk":{"S":"T#demo"}}\'',
        "",
        f"  State lives in memory and is gone on exit; {shown}/ keeps tokens, secrets and the knowledge index.",
        f"  Account {ACCOUNT}. Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stack", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000, help="API port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument(
        "--data-dir", default=str(DEFAULT_DATA_DIR), help="where tokens, secrets and indexes live"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    parser.add_argument(
        "--no-warm-up",
        dest="warm_up",
        action="store_false",
        help="do not train or load the starter intent head at start-up (the first triage does)",
    )
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="stop when the starting process is gone"
    )
    args = parser.parse_args(argv)
    parent = os.getppid()
    # Read by OpenBLAS when numpy loads (not yet): its worker threads spin on a busy machine, and training the
    # starter intent head took ~5x the CPU time with them (52 s instead of 10 s). Export it to choose otherwise.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    # A plain flag: the handler runs on the main thread between bytecodes, and an Event's set() there could wait
    # forever for the lock the interrupted Event.wait() was holding (a stop signal then hung the stack).
    stop_requested: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stop_requested.append(number))
    stack = _start_here(args.port, Path(args.data_dir).resolve(), quiet=args.quiet, warm_up=args.warm_up)
    print(banner(stack), flush=True)
    try:
        while not stop_requested:
            time.sleep(0.5)
            if args.exit_with_parent and os.getppid() != parent:
                break  # the test run that started us died without stopping us
    finally:
        print("Stopping the local stack…", flush=True)
        stack.stop()
        print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
