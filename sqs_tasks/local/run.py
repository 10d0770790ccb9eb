"""`sqs-tasks local`: the SAM stack deployed into an embedded moto server, the example project
configured exactly as the deployed worker function, its tasks run by emulated event source
mappings, and a results table at the end.

Exit status: 0 when every task reached the state it should, 1 when one did not, 2 when the
run timed out, 3 when the stack could not be deployed (the message says why).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from .stack import (
    FAKE_CREDENTIALS,
    FINGERPRINT_FILE,
    REGION,
    DeployError,
    Deployment,
    SamTools,
    deploy,
)

# What the local stack is deployed with; the template's defaults for everything else.
LOCAL_PARAMETERS = {
    "Prefix": "local",
    "QueueNames": "default,emails",
    # moto's own mappings would consume the queues without running any code: the mappings
    # are emulated here instead, from their deployed configuration.
    "EnableEventSourceMappings": "false",
}
STACK_NAME = "sqs-tasks-local"
WORKDIR = Path(".aws-sam") / "local"
# Handlers whose invocations may run on several threads at once (lambda_handler.handler
# keeps a BatchProcessor per thread); the others run one invocation at a time here.
THREAD_SAFE_HANDLERS = {"lambda_handler.handler.handler"}
# The deferred task of the mix waits this long (an SQS DelaySeconds).
DEFER = timedelta(seconds=5)
FAN_OUT = 3
# With --dead-letter and no --visibility-timeout, a refused message comes back after the
# longest batching window plus this (a batch is gathered, then run, in that time).
VISIBILITY_MARGIN = 2
FORGED_BODY = (
    '{"v":1,"id":"forged","backend":"default","task":"example.tasks.add",'
    '"q":"default","p":0,"sig":"not-a-valid-signature"}'
)
BULK_CHUNK = 100
MOTO_START_TIMEOUT = 60
# Shown progress lines, when stderr is not a terminal: one per this many seconds.
PLAIN_PROGRESS_EVERY = 2.0
HEADERS = ["id", "task", "queue", "prio", "status", "tries", "took", "result / error", "check"]

EXIT_OK, EXIT_WRONG, EXIT_TIMEOUT, EXIT_SETUP = 0, 1, 2, 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sqs-tasks local`."""
    parser.add_argument(
        "--tasks",
        type=int,
        default=0,
        metavar="N",
        help="also enqueue N no-op tasks across the queues (in bulk), with a progress bar "
        "and throughput figures",
    )
    parser.add_argument(
        "--dead-letter",
        action="store_true",
        help="also send a forged message: refused on every receive, moved to the dead-letter "
        "queue after maxReceiveCount receives, settled by the dead-letter function; unless "
        "--visibility-timeout is given, receives then hide messages for the longest batching "
        f"window + {VISIBILITY_MARGIN} s only, so this takes seconds",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        metavar="S",
        help="receive with this visibility timeout instead of the queues' own (Lambda never "
        "does; locally it makes redeliveries take seconds instead of minutes)",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a stack parameter (repeatable), e.g. MaximumBatchingWindow=1, BatchSize=5, "
        "MaxReceiveCount=2; the template's defaults otherwise, except "
        + ", ".join(f"{k}={v}" for k, v in LOCAL_PARAMETERS.items()),
    )
    parser.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="the SAM template"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="give up when the tasks have not all finished after this many seconds "
        "(default: 120 + N/10)",
    )
    parser.add_argument(
        "--rebuild", action="store_true", help="run `sam build` even when no file changed"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the run, keep the stack and the workers up until Ctrl-C, and print the "
        "environment that points a Django project at them",
    )


# ----------------------------------------------------------------- output
class Console:
    """The report to stdout; the live progress line to stderr."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.live = self.err.isatty()
        self._shown = False
        self._last_plain = 0.0

    def say(self, text: str = "") -> None:
        """A line of the report."""
        self.clear()
        print(text, file=self.out, flush=True)

    def step(self, text: str) -> None:
        """A detail of the current step, indented."""
        self.say(f"      {text}")

    def progress(self, text: str, *, final: bool = False) -> None:
        """Redraw the progress line (a terminal), or print it now and then (a pipe, a file)."""
        if self.live:
            self.err.write("\r\033[K" + text + ("\n" if final else ""))
            self.err.flush()
            self._shown = not final
        elif final or time.monotonic() - self._last_plain >= PLAIN_PROGRESS_EVERY:
            print(text, file=self.err, flush=True)
            self._last_plain = time.monotonic()

    def clear(self) -> None:
        """Remove the progress line before printing something else."""
        if self._shown:
            self.err.write("\r\033[K")
            self.err.flush()
            self._shown = False


def bar(done: int, total: int, width: int = 24) -> str:
    """A text progress bar: [#########---------------]"""
    filled = width if total <= 0 else min(width, width * done // total)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def plural(n: int, word: str) -> str:
    """'1 invocation', '2 invocations'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


# ----------------------------------------------------------------- what should happen
Check = Callable[[Any], str | None]  # a TaskResult -> what is wrong with it, or None


@dataclass
class Expected:
    """A result and the state it should reach."""

    label: str
    status: str
    check: Check | None = None
    children: list[str] = field(default_factory=list)  # results it enqueued, shown under it


def returns(value: Any) -> Check:
    """The result's return value must be value."""

    def check(result: Any) -> str | None:
        return None if result.return_value == value else f"expected {value!r}"

    return check


def failed_with(name: str) -> Check:
    """The result's last error must be an exception class called name."""

    def check(result: Any) -> str | None:
        kinds = [e.exception_class_path.rsplit(".", 1)[-1] for e in result.errors]
        return None if kinds and kinds[-1] == name else f"expected {name}, got {kinds}"

    return check


def judge(result: Any, expected: Expected) -> str | None:
    """What is wrong with a result, or None."""
    if result.status != expected.status:
        return f"is {result.status}, expected {expected.status}"
    return expected.check(result) if expected.check is not None else None


@dataclass
class Tracker:
    """Follows the run: results finished (Django's task_finished), the dead letter settled."""

    expected: dict[str, Expected] = field(default_factory=dict)
    finished: set[str] = field(default_factory=set)
    last_finished_at: float | None = None
    forged_id: str | None = None
    forged_dead_letter_arn: str | None = None
    forged_receives: int = 0
    forged_settled_by: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, result_id: str, expected: Expected) -> None:
        """Add a result to wait for."""
        with self.lock:
            self.expected[result_id] = expected

    def on_finished(self, sender: Any, task_result: Any, **kwargs: Any) -> None:
        """The task_finished signal: a result reached SUCCESSFUL or FAILED (worker threads)."""
        if task_result.task.name == "fan_out" and task_result.status == "SUCCESSFUL":
            for i, child in enumerate(task_result.return_value):
                self.expect(child, Expected(f"  -> add({i}, {i})", "SUCCESSFUL", returns(2 * i)))
            with self.lock:
                parent = self.expected.get(task_result.id)
                if parent is not None:
                    parent.children = list(task_result.return_value)
        with self.lock:
            self.finished.add(task_result.id)
            self.last_finished_at = time.monotonic()

    def on_settled(self, mapping: Any, message: dict[str, Any], outcome: str) -> None:
        """An emulated mapping settled a message: "deleted" or "failed" (worker threads)."""
        if message["MessageId"] != self.forged_id:
            return
        with self.lock:
            if mapping.queue_arn == self.forged_dead_letter_arn and outcome == "deleted":
                self.forged_settled_by = mapping.function.name
            elif outcome == "failed":
                self.forged_receives += 1

    def snapshot(self) -> dict[str, Expected]:
        """The results expected so far (worker threads may add children meanwhile)."""
        with self.lock:
            return dict(self.expected)

    def counts(self) -> tuple[int, int]:
        """(finished, expected), the dead letter included."""
        with self.lock:
            done = len(self.finished & self.expected.keys())
            total = len(self.expected)
            if self.forged_id is not None:
                total += 1
                done += self.forged_settled_by is not None
            return done, total


# ----------------------------------------------------------------- the environment
@contextmanager
def moto_server(log_path: Path) -> Iterator[str]:
    """A moto server on 127.0.0.1 in a process (and so on a core) of its own.

    Its URL names it `localhost`: moto reads an IP address in the Host header as an S3
    bucket name, which `sam package` would trip over.
    """
    if importlib.util.find_spec("moto") is None:
        raise DeployError("moto is not installed: pip install 'moto[server]' (in sqs-tasks[dev])")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + MOTO_START_TIMEOUT
            while True:
                if process.poll() is not None:
                    raise DeployError(f"the moto server exited ({process.returncode}): {log_path}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise DeployError(
                            f"the moto server did not listen in {MOTO_START_TIMEOUT} s: {log_path}"
                        ) from None
                    time.sleep(0.1)
            yield f"http://localhost:{port}"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def not_emulated(moto_log: Path) -> list[str]:
    """The resource types moto's CloudFormation said it skipped."""
    found = re.findall(r"No Moto CloudFormation support for (\S+)", moto_log.read_text())
    return sorted(set(found))


def configure_logging(path: Path, level: str, *, append: bool = False) -> None:
    """Every log line (the workers', the tasks') to a file, none on the console.

    Call again after django.setup(): its dictConfig of LOGGING closes the handlers there were.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="a" if append else "w")
    formatter = logging.Formatter("%(asctime)sZ %(levelname)s %(threadName)s %(name)s: %(message)s")
    formatter.converter = time.gmtime  # Django sets TZ to its TIME_ZONE: say UTC plainly.
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def stack_parameters(pairs: Sequence[str]) -> dict[str, str]:
    """The local defaults, a fresh DjangoSecretKey, then each KEY=VALUE of --parameter."""
    parameters = {**LOCAL_PARAMETERS, "DjangoSecretKey": secrets.token_urlsafe(50)}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter wants KEY=VALUE, not {pair!r}")
        parameters[key] = value
    return parameters


def configure_django(deployment: Deployment, project: Path) -> dict[str, str]:
    """Make this process what the deployed worker function is: its environment, then Django."""
    from django.apps import apps

    if apps.ready:
        raise RuntimeError("sqs-tasks local configures Django itself, but it is already set up")
    variables = deployment.environment(deployment.outputs["WorkerFunctionName"])
    os.environ.update(variables)
    # What the Lambda runtime provides (credentials, region), pointed at moto.
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.update(
        AWS_DEFAULT_REGION=deployment.region,
        AWS_REGION=deployment.region,
        AWS_ENDPOINT_URL=deployment.endpoint_url,
    )
    # As in the code package: the project's top level is importable.
    sys.path.insert(0, str(project))
    import django

    django.setup()
    return variables


def make_schedule_group(deployment: Deployment) -> str | None:
    """The stack's EventBridge Scheduler group, which moto's CloudFormation does not make."""
    group = deployment.outputs.get("ScheduleGroup")
    if not group:
        return None
    scheduler = deployment.client("scheduler")
    if group in {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}:
        return None
    scheduler.create_schedule_group(Name=group)
    return group


def sqs_client(deployment: Deployment, connections: int) -> Any:
    """An SQS client of the moto server with a connection for each of its threads."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session(region_name=deployment.region).client(
        "sqs",
        endpoint_url=deployment.endpoint_url,
        config=Config(max_pool_connections=connections),
    )


def deployed_mappings(deployment: Deployment) -> list[Any]:
    """The configuration of every deployed event source mapping, the task queues' first."""
    from .mapping import read_mappings

    lambda_client, sqs = deployment.client("lambda"), deployment.client("sqs")
    configs = []
    for function in lambda_client.list_functions()["Functions"]:
        configuration = deployment.function(function["FunctionName"])
        configs.extend(read_mappings(lambda_client, sqs, configuration))
    return sorted(configs, key=lambda c: (c.dead_letter_arn is None, c.queue_name))


def start_mappings(
    deployment: Deployment, configs: Sequence[Any], visibility_timeout: int | None, listener: Any
) -> list[Any]:
    """An emulated event source mapping for each deployed one."""
    from .mapping import EventSourceMapping

    mappings = []
    for config in configs:
        mapping = EventSourceMapping(
            config,
            config.function.load_handler(),
            sqs_client(deployment, config.maximum_concurrency + 2),
            visibility_timeout=visibility_timeout,
            serialize=config.function.handler not in THREAD_SAFE_HANDLERS,
            listeners=[listener],
        )
        mapping.start()
        mappings.append(mapping)
    return mappings


def fire_schedules(stopping: threading.Event) -> None:
    """EventBridge Scheduler: send each one-time schedule's message once it is due."""
    from ..testing import fire_due_schedules

    while not stopping.wait(1):
        try:
            fire_due_schedules("default")
        except Exception:
            logging.getLogger("sqs_tasks.local").exception("Firing due schedules failed")


# ----------------------------------------------------------------- the tasks
def enqueue_mix(tracker: Tracker) -> list[str]:
    """The example project's mix, as its web app would enqueue it; returns the result ids."""
    from example import tasks

    run_after = datetime.now(UTC) + DEFER

    def waited(result: Any) -> str | None:
        if result.started_at is None or result.started_at < run_after:
            return f"ran early: started {result.started_at}, due {run_after}"
        return returns(42)(result)

    def saw_itself(result: Any) -> str | None:
        return returns({"id": result.id, "attempt": 1})(result)

    def enqueued_children(result: Any) -> str | None:
        return None if len(result.return_value) == FAN_OUT else f"expected {FAN_OUT} ids"

    def retried(result: Any) -> str | None:
        if result.attempts != 2 or len(result.errors) != 1:
            return f"expected 2 attempts, 1 error; got {result.attempts}, {len(result.errors)}"
        return returns("payments answered on attempt 2")(result)

    mix: list[tuple[Any, Expected]] = [
        (tasks.add.enqueue(2, 3), Expected("add(2, 3)", "SUCCESSFUL", returns(5))),
        (tasks.shout.enqueue("hi"), Expected("shout('hi') priority", "SUCCESSFUL", returns("HI"))),
        (
            tasks.shout.using(queue_name="emails", priority=-5).enqueue("you've got mail"),
            Expected("shout(...) emails queue", "SUCCESSFUL", returns("YOU'VE GOT MAIL")),
        ),
        (
            tasks.greet.enqueue("Ada"),
            Expected("greet('Ada') async", "SUCCESSFUL", returns("Hello, Ada!")),
        ),
        (tasks.whoami.enqueue(), Expected("whoami() context", "SUCCESSFUL", saw_itself)),
        (
            tasks.fan_out.enqueue(FAN_OUT),
            Expected(f"fan_out({FAN_OUT})", "SUCCESSFUL", enqueued_children),
        ),
        (
            tasks.flaky.enqueue("payments"),
            Expected("flaky('payments') retry", "SUCCESSFUL", retried),
        ),
        (
            tasks.fail.enqueue("on purpose"),
            Expected("fail('on purpose')", "FAILED", failed_with("ValueError")),
        ),
        (
            tasks.add.using(run_after=run_after).enqueue(40, 2),
            Expected(f"add(40, 2) deferred {DEFER.seconds} s", "SUCCESSFUL", waited),
        ),
    ]
    for result, expected in mix:
        tracker.expect(result.id, expected)
    return [result.id for result, _ in mix]


def send_forged(deployment: Deployment, tracker: Tracker, mappings: Sequence[Any]) -> None:
    """A message nobody signed, on the default queue: refused until SQS dead-letters it."""
    (default,) = [m for m in mappings if m.config.queue_name.endswith("-default")]
    tracker.forged_dead_letter_arn = default.config.dead_letter_arn
    tracker.forged_id = deployment.client("sqs").send_message(
        QueueUrl=default.config.queue_url, MessageBody=FORGED_BODY
    )["MessageId"]


def enqueue_bulk(n: int, tracker: Tracker, shown: Callable[[int], None]) -> tuple[list[str], str]:
    """n no-op tasks across the queues, BULK_CHUNK at a time; their ids and how."""
    from django.tasks import default_task_backend

    from example import tasks

    backend: Any = default_task_backend
    queues = sorted(backend.queues)
    enqueue_many = getattr(backend, "enqueue_many", None)
    ids: list[str] = []
    for start in range(0, n, BULK_CHUNK):
        entries: list[tuple[Any, tuple[int], dict[str, Any]]] = [
            (tasks.noop.using(queue_name=queues[i % len(queues)]), (i,), {})
            for i in range(start, min(n, start + BULK_CHUNK))
        ]
        if enqueue_many is not None:
            results = enqueue_many(entries)
        else:
            results = [task.enqueue(*a, **k) for task, a, k in entries]
        for (_, (i,), _), result in zip(entries, results, strict=True):
            tracker.expect(result.id, Expected(f"noop({i})", "SUCCESSFUL", returns(i)))
            ids.append(result.id)
        shown(len(ids))
    return ids, "enqueue_many" if enqueue_many is not None else "enqueue"


# ----------------------------------------------------------------- waiting and judging
def queues_idle(deployment: Deployment) -> bool:
    """Nothing visible, in flight or delayed in any queue, the dead-letter queues included."""
    sqs = deployment.client("sqs")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    prefix = deployment.parameters["Prefix"]
    for url in sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        if any(int(attributes.get(n, "0")) for n in names):
            return False
    return True


def read_results(ids: Sequence[str]) -> dict[str, Any]:
    """Each result as the web app sees it (get_result: a consistent read), a few at a time."""
    from django.tasks import default_task_backend

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(ids, pool.map(default_task_backend.get_result, ids), strict=True))


def mix_table(
    ids: Sequence[str], expected: dict[str, Expected], tracker: Tracker, results: dict[str, Any]
) -> tuple[str, list[str]]:
    """The mix as a table (what a task enqueued under it), and what went wrong."""
    from ..cli import describe, format_table

    rows, problems = [], []
    order = []
    for result_id in ids:
        order.append(result_id)
        order.extend(c for c in expected[result_id].children if c in expected)
    for result_id in order:
        result, wanted = results[result_id], expected[result_id]
        problem = judge(result, wanted)
        row = describe(result)
        row[1] = wanted.label
        rows.append([*row, "ok" if problem is None else f"WRONG: {problem}"])
        if problem is not None:
            problems.append(f"{result_id}: {wanted.label} {problem}")
    if tracker.forged_id is not None:
        settled = tracker.forged_settled_by
        rows.append(
            [
                tracker.forged_id[:8],
                "forged message",
                "default",
                "",
                "DEAD-LETTERED" if settled else "NOT SETTLED",
                tracker.forged_receives,
                "",
                f"refused each receive; settled by {settled}" if settled else "",
                "ok" if settled else "WRONG: not dead-lettered and settled",
            ]
        )
        if not settled:
            problems.append("the forged message was not dead-lettered and settled")
    return format_table(HEADERS, rows), problems


def bulk_table(
    ids: Sequence[str], expected: dict[str, Expected], results: dict[str, Any]
) -> tuple[str, list[str]]:
    """The --tasks load, one line per queue, and what went wrong."""
    from ..cli import format_table

    by_queue: dict[str, list[Any]] = {}
    problems = []
    for result_id in ids:
        result, wanted = results[result_id], expected[result_id]
        by_queue.setdefault(result.task.queue_name, []).append(result)
        problem = judge(result, wanted)
        if problem is not None:
            problems.append(f"{result_id}: {wanted.label} {problem}")
    rows = []
    for queue, found in sorted(by_queue.items()):
        took = sorted(
            (r.finished_at - r.started_at) / timedelta(milliseconds=1)
            for r in found
            if r.started_at and r.finished_at
        )
        statuses: dict[str, int] = {}
        for r in found:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        rows.append(
            [
                queue,
                len(found),
                ", ".join(f"{s} {n}" for s, n in sorted(statuses.items())),
                f"{statistics.median(took):.0f} ms" if took else "",
                f"{took[int(0.95 * (len(took) - 1))]:.0f} ms" if took else "",
                max(r.attempts for r in found),
            ]
        )
    headers = ["queue", "noop tasks", "statuses", "took p50", "took p95", "most tries"]
    return format_table(headers, rows), problems


# ----------------------------------------------------------------- the command
def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


@dataclass
class Options:
    """The command line, checked."""

    template: Path
    parameters: dict[str, str]
    tasks: int
    dead_letter: bool
    visibility_timeout: int | None
    timeout: float
    rebuild: bool
    keep_running: bool

    @classmethod
    def parse(cls, args: argparse.Namespace) -> Options:
        """From argparse; ValueError says what is wrong."""
        if args.tasks < 0:
            raise ValueError("--tasks must be 0 or more")
        if args.visibility_timeout is not None and not 0 <= args.visibility_timeout <= 43_200:
            raise ValueError("--visibility-timeout must be 0 to 43200 seconds")
        return cls(
            template=args.template.resolve(),
            parameters=stack_parameters(args.parameter),
            tasks=args.tasks,
            dead_letter=args.dead_letter,
            visibility_timeout=args.visibility_timeout,
            timeout=args.timeout if args.timeout is not None else 120 + args.tasks / 10,
            rebuild=args.rebuild,
            keep_running=args.keep_running,
        )


def main(args: argparse.Namespace) -> int:
    """Run `sqs-tasks local`; returns the exit status."""
    console = Console()
    try:
        options = Options.parse(args)
    except ValueError as e:
        console.say(f"sqs-tasks local: {e}")
        return EXIT_SETUP
    if not options.template.exists():
        console.say(f"sqs-tasks local: no SAM template at {options.template} (see --template)")
        return EXIT_SETUP
    return LocalRun(options, console).run()


class LocalRun:
    """One run of `sqs-tasks local`."""

    def __init__(self, options: Options, console: Console) -> None:
        self.options = options
        self.console = console
        self.project = options.template.parent
        self.workdir = self.project / WORKDIR
        self.log_path = self.workdir / "run.log"
        self.tracker = Tracker()
        self.mappings: list[Any] = []
        self.variables: dict[str, str] = {}  # the worker function's environment
        self.stopping = threading.Event()  # stops the scheduler's clock

    def run(self) -> int:
        """Deploy, configure, start the workers, enqueue, wait, report."""
        began = time.monotonic()
        say = self.console.say
        # Terminated: unwind, so that the moto server and the workers stop too.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        configure_logging(self.log_path, "INFO")
        say("sqs-tasks local: the SAM stack in an embedded AWS (moto), run as Lambda runs it")
        with ExitStack() as stack:
            try:
                endpoint = stack.enter_context(moto_server(self.workdir / "moto.log"))
                say(f"[1/4] moto server at {endpoint}")
                deployment = self.deploy(endpoint)
            except DeployError as e:
                say(f"\nsqs-tasks local: could not deploy the stack:\n{e}")
                return EXIT_SETUP
            self.configure(deployment)
            stack.callback(self.stop_workers)
            self.start_workers(deployment)
            status = self.enqueue_and_wait(deployment)
            if status == EXIT_OK and self.options.keep_running:
                self.keep_running(deployment)
        if status == EXIT_OK:
            count = sum(self.tracker.counts()[1:])
            took = time.monotonic() - began
            say(f"\nAll {count} tasks reached the state they should ({took:.1f} s in all).")
        return status

    def deploy(self, endpoint: str) -> Deployment:
        """[2/4] The template, through the same pipeline as the infrastructure tests."""
        options, console = self.options, self.console
        shown = ", ".join(
            f"{k}={v}" for k, v in options.parameters.items() if k != "DjangoSecretKey"
        )
        console.say(f"[2/4] deploy {options.template.name} ({shown})")
        tools = SamTools.find(self.project)
        if options.rebuild:
            (self.workdir / "build" / FINGERPRINT_FILE).unlink(missing_ok=True)
        deployment = deploy(
            options.template,
            endpoint,
            options.parameters,
            self.workdir / "deploy",
            stack_name=STACK_NAME,
            build_dir=self.workdir / "build",
            tools=tools,
            region=REGION,
            log=console.step,
        )
        skipped = not_emulated(self.workdir / "moto.log")
        if skipped:
            console.step(f"not emulated by moto (tests/infra checks them): {', '.join(skipped)}")
        return deployment

    def configure(self, deployment: Deployment) -> None:
        """[3/4] This process as the worker function: its environment, Django, the mappings."""
        console = self.console
        variables = configure_django(deployment, self.project)
        configure_logging(
            self.log_path, os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"), append=True
        )
        console.say(
            f"[3/4] {variables.get('DJANGO_SETTINGS_MODULE')} set up with the environment of "
            f"{deployment.outputs['WorkerFunctionName']} ({len(variables)} variables)"
        )
        for key in ("SQS_TASKS_TABLE", "SQS_TASKS_QUEUE_PREFIX", "SQS_TASKS_QUEUES"):
            console.step(f"{key}={variables.get(key, '')}")
        group = make_schedule_group(deployment)
        if group:
            console.step(f"made schedule group {group} (moto's CloudFormation skips the type)")
        self.variables = variables

    def start_workers(self, deployment: Deployment) -> None:
        """The emulated event source mappings, and the scheduler's clock."""
        from django.tasks.signals import task_finished

        task_finished.connect(self.tracker.on_finished, dispatch_uid="sqs-tasks-local")
        configs = deployed_mappings(deployment)
        # A message must stay hidden while its batch is gathered and run, or it is
        # delivered again meanwhile (the runner would drop the duplicate).
        floor = max((c.batching_window for c in configs), default=0) + VISIBILITY_MARGIN
        visibility = self.options.visibility_timeout
        if visibility is None and self.options.dead_letter:
            visibility = floor
        self.console.step("event source mappings (from lambda:ListEventSourceMappings):")
        for config in configs:
            self.console.step(f"  {config.describe()}")
        if visibility is not None:
            why = "--visibility-timeout" if self.options.visibility_timeout else "--dead-letter"
            self.console.step(
                f"  receiving with a {visibility} s visibility timeout instead ({why})"
            )
            if visibility < floor:
                self.console.step(
                    f"  which is under the batching window + {VISIBILITY_MARGIN} s: messages may "
                    "be delivered twice (the runner drops the duplicates)"
                )
        self.mappings = start_mappings(deployment, configs, visibility, self.tracker.on_settled)
        threading.Thread(
            target=fire_schedules, args=(self.stopping,), name="scheduler", daemon=True
        ).start()

    def stop_workers(self) -> None:
        """Stop polling and let running invocations finish."""
        self.stopping.set()
        for mapping in self.mappings:
            mapping.stop()
        for mapping in self.mappings:
            mapping.join(timeout=30)

    def enqueue_and_wait(self, deployment: Deployment) -> int:
        """[4/4] Enqueue, show progress until everything finished, print the tables."""
        options, console, tracker = self.options, self.console, self.tracker
        console.say(
            f"[4/4] enqueue and run the tasks (log: {self.log_path.relative_to(self.project)})"
        )
        started = time.monotonic()
        ids = enqueue_mix(tracker)
        if options.dead_letter:
            send_forged(deployment, tracker, self.mappings)
        bulk_ids: list[str] = []
        enqueue_took, method = 0.0, ""
        if options.tasks:

            def shown(n: int) -> None:
                done = tracker.counts()[0]
                console.progress(
                    f"  enqueue {bar(n, options.tasks)} {n}/{options.tasks}, {done} finished"
                )

            bulk_ids, method = enqueue_bulk(options.tasks, tracker, shown)
            enqueue_took = time.monotonic() - started

        def line() -> str:
            done, total = tracker.counts()
            elapsed = max(time.monotonic() - started, 1e-3)
            rate = done / elapsed
            return (
                f"  run {bar(done, total)} {done}/{total} finished  {elapsed:5.1f} s  {rate:4.0f}/s"
            )

        deadline = started + options.timeout
        while True:
            console.progress(line())
            done, total = tracker.counts()
            if done == total and queues_idle(deployment):
                timed_out = False
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.2)
        console.progress(line(), final=True)
        last_finished = (tracker.last_finished_at or time.monotonic()) - started

        # Workers may still be running (a timeout, --keep-running): report on a snapshot.
        expected = tracker.snapshot()
        results = read_results(list(expected))
        table, problems = mix_table(ids, expected, tracker, results)
        console.say()
        console.say(table)
        if bulk_ids:
            table, bulk_problems = bulk_table(bulk_ids, expected, results)
            problems.extend(bulk_problems)
            finished = len(tracker.finished)
            console.say()
            console.say(table)
            console.say(
                f"\nthroughput: enqueued {options.tasks} tasks in {enqueue_took:.1f} s "
                f"({options.tasks / max(enqueue_took, 1e-3):.0f} tasks/s, {method}); "
                f"{finished} tasks finished {last_finished:.1f} s after the first enqueue "
                f"({finished / max(last_finished, 1e-3):.0f} tasks/s end to end)"
            )
        console.say()
        for mapping in self.mappings:
            s = mapping.stats
            console.say(
                f"  {mapping.config.queue_name:<18} {plural(s.invocations, 'invocation'):>16} "
                f"of {mapping.config.function.name}, largest batch {s.largest_batch:>2}, "
                f"{s.deleted:>5} deleted, {s.failed} failed"
            )
        if timed_out:
            pending = [
                f"{i}: {e.label} is {results[i].status}"
                for i, e in expected.items()
                if results[i].status not in {"SUCCESSFUL", "FAILED"}
            ]
            if tracker.forged_id is not None and tracker.forged_settled_by is None:
                pending.append(f"forged message {tracker.forged_id}: not dead-lettered and settled")
            if not pending:
                pending.append("every result finished, but messages are left in the queues")
            return self.fail(
                EXIT_TIMEOUT, f"TIMED OUT after {options.timeout:.0f} s; unfinished:", pending
            )
        if problems:
            return self.fail(
                EXIT_WRONG, f"{plural(len(problems), 'task')} did not end as it should:", problems
            )
        return EXIT_OK

    def fail(self, status: int, headline: str, items: Sequence[str]) -> int:
        """Say what went wrong (and, in one line, on stderr); returns status."""
        lines = [f"\nsqs-tasks local: {headline}", *(f"  {i}" for i in items[:20])]
        if len(items) > 20:
            lines.append(f"  ... and {len(items) - 20} more")
        lines.append(f"The workers' log: {self.log_path}")
        for line in lines:
            self.console.say(line)
        print(f"sqs-tasks local: FAILED: {headline}", file=self.console.err)
        return status

    def keep_running(self, deployment: Deployment) -> None:
        """Serve until Ctrl-C: the stack in moto, the emulated mappings running what comes."""
        env = {
            **self.variables,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": deployment.region,
            "AWS_ENDPOINT_URL": deployment.endpoint_url,
        }
        self.console.say("\nThe stack and the workers stay up until Ctrl-C. In another shell:")
        self.console.say("  export " + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
        self.console.say("  then enqueue from your project (e.g. python -m django shell).")
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        while not stop.wait(1):
            pass
        self.console.say("\nStopping.")
