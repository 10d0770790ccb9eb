"""`sqs-tasks local`: the project's SAM stack (template.yaml, from `sqs-tasks init`) deployed
into an embedded moto server, the project configured exactly as the deployed worker function,
its tasks run by emulated event source mappings, and a results table at the end: the example
project's demo mix in sqs-tasks' repository (or with --demo), else a smoke check.

Exit status: 0 when every task reached the state it should, 1 when one did not, 2 when the
run timed out, 3 when the stack could not be deployed (the message says why).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

from .build import FINGERPRINT_FILE
from .console import Console, follow, plural
from .emf import MetricsTap, tapped
from .environment import (
    configure_django,
    configure_logging,
    make_schedule_group,
    moto_server,
    not_emulated,
    preimport,
)
from .expectations import Tracker
from .load import enqueue_load
from .mapping_config import deployed_mappings
from .mix import enqueue_mix, send_forged
from .options import VISIBILITY_MARGIN, Options
from .periodic import expect_first_firings, sync_declared
from .report import failure_lines, mapping_lines, read_results, report_lines, unfinished
from .serve import serve
from .stack import Deployment, deploy
from .tools import FAKE_CREDENTIALS, REGION, DeployError, SamTools
from .workers import queues_idle, start_clock, start_mappings

STACK_NAME = "sqs-tasks-local"
WORKDIR = Path(".aws-sam") / "local"

EXIT_OK, EXIT_WRONG, EXIT_TIMEOUT, EXIT_SETUP = 0, 1, 2, 3


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(args: argparse.Namespace) -> int:
    """Run `sqs-tasks local`; returns the exit status."""
    console = Console()
    try:
        options = Options.parse(args)
    except ValueError as e:
        console.say(f"sqs-tasks local: {e}")
        return EXIT_SETUP
    if options.no_sam:
        from .quick import main as quick

        return quick(options.template.parent, options.keep_running, options.env_file)
    if not options.template.exists():
        console.say(
            f"sqs-tasks local: no SAM template at {options.template}: run `sqs-tasks init` in "
            "your Django project's root first (or see --template)"
        )
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
        self.tap: MetricsTap | None = None

    def run(self) -> int:
        """Deploy, configure, start the workers, enqueue, wait, report."""
        began = time.monotonic()
        say = self.console.say
        # Terminated: unwind, so that the moto server and the workers stop too.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        configure_logging(self.log_path, "INFO")
        say("sqs-tasks local: the SAM stack in an embedded AWS (moto), run as Lambda runs it")
        # Imported meanwhile: the moto server takes seconds to start, Django and boto3 too.
        threading.Thread(target=preimport, name="preimport", daemon=True).start()
        with ExitStack() as stack:
            try:
                endpoint = stack.enter_context(moto_server(self.workdir / "moto.log")).url
                say(f"[1/4] moto server at {endpoint}")
                deployment = self.deploy(endpoint)
            except DeployError as e:
                say(f"\nsqs-tasks local: could not deploy the stack:\n{e}")
                return EXIT_SETUP
            self.configure(deployment)
            # The functions' EMF lines go to the log and the metric totals, not the report.
            self.tap = stack.enter_context(tapped(self.log_path))
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
        shown = ", ".join(f"{k}={v}" for k, v in options.parameters.items())
        console.say(f"[2/4] deploy {options.template.name} ({shown})")
        tools = SamTools.find(self.project, install=True, log=console.step)
        if not tools.builds_bytecode():
            console.step(
                "no Python 3.13 (the runtime's) for sam build: the code package is built "
                "without bytecode, so each cold start compiles it (put python3.13 on PATH)"
            )
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
        from django.tasks import default_task_backend

        for change in sync_declared(default_task_backend):
            console.step(f"periodic tasks, as `manage.py sqs_tasks_schedules sync` does: {change}")
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
        start_clock(self.stopping)

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
        if options.demo:
            ids = enqueue_mix(tracker)
        else:
            from .smoke import enqueue_smoke  # Defines a task: Django must be set up.

            ids = enqueue_smoke(tracker)
        if options.periodic:
            from django.tasks import default_task_backend

            # Within the time left, less a margin for the firing's own run.
            within = timedelta(seconds=options.timeout - (time.monotonic() - started) - 10)
            fired, notes = expect_first_firings(default_task_backend, tracker, within)
            ids += fired
            for note in notes:
                console.step(note)
        if options.dead_letter:
            send_forged(deployment, tracker, self.mappings)
        load = enqueue_load(options.tasks, tracker, console, started) if options.tasks else None

        def idle() -> bool:
            tracker.delete_kept_forgery(deployment.client("sqs"))
            return queues_idle(deployment)

        timed_out = follow(console, tracker, idle, started, options.timeout)
        last_finished = (tracker.last_finished_at or time.monotonic()) - started

        # Workers may still be running (a timeout, --keep-running): report on a snapshot.
        expected = tracker.snapshot()
        results = read_results(list(expected))
        lines, problems = report_lines(ids, expected, tracker, results, load, last_finished)
        metrics = self.tap.totals.report() if self.tap is not None else []
        for line in [*lines, "", *mapping_lines(self.mappings), "", *metrics]:
            console.say(line)
        if timed_out:
            return self.fail(
                EXIT_TIMEOUT,
                f"TIMED OUT after {options.timeout:.0f} s; unfinished:",
                unfinished(expected, results, tracker),
            )
        if problems:
            return self.fail(
                EXIT_WRONG, f"{plural(len(problems), 'task')} did not end as it should:", problems
            )
        return EXIT_OK

    def fail(self, status: int, headline: str, items: Sequence[str]) -> int:
        """Say what went wrong (and, in one line, on stderr); returns status."""
        for line in failure_lines(headline, items, self.log_path):
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
        serve(self.console, env, self.options.env_file)
