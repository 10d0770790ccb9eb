"""The options of `sqs-tasks local`, checked, and the stack parameters they make.

Imports neither Django nor boto3: the `sqs-tasks` parser is built from it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# What the local stack is deployed with; the template's defaults for everything else.
LOCAL_PARAMETERS = {
    "Prefix": "local",
    # moto's own mappings would consume the queues without running any code: the mappings
    # are emulated here instead, from their deployed configuration.
    "EnableEventSourceMappings": "false",
}
# The example project's demo mix uses a second queue.
DEMO_PARAMETERS = {"Prefix": "local", "QueueNames": "default,emails", **LOCAL_PARAMETERS}
# With --dead-letter and no --visibility-timeout, a refused message comes back after the
# longest batching window plus this (a batch is gathered, then run, in that time).
VISIBILITY_MARGIN = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sqs-tasks local`."""
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run the example project's demo mix (the default in sqs-tasks' repository); "
        "elsewhere the run is a smoke check: one no-op task on each queue of TASKS",
    )
    parser.add_argument(
        "--no-sam",
        action="store_true",
        help="no SAM stack: make the TASKS table and queues in moto directly and run the tasks "
        "with an in-process worker (seconds to start; for daily work on tasks)",
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        metavar="PATH",
        help="also write the environment that points a Django project at the stack to PATH, "
        "as KEY=VALUE lines (for manage.py runserver/shell, docker --env-file, IDEs)",
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=0,
        metavar="N",
        help="also enqueue N no-op tasks across the queues (in bulk), with a progress bar "
        "and throughput figures (with the demo)",
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
        "--periodic",
        action="store_true",
        help="also wait for the first firing of each periodic task (OPTIONS['PERIODIC']) that "
        "is due within --timeout: a minute for rate(1 minute); without it they are synced to "
        "the local schedule group and fire on schedule, unawaited",
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
        "MaxReceiveCount=2, QueueNames=default,emails; the template's defaults otherwise, "
        "except " + ", ".join(f"{k}={v}" for k, v in LOCAL_PARAMETERS.items()) + " (and "
        "QueueNames=default,emails with the demo)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        default=Path("template.yaml"),
        help="the SAM template (`sqs-tasks init` writes it); its folder is the project's root",
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


@dataclass
class Options:
    """The command line, checked."""

    template: Path
    parameters: dict[str, str]
    demo: bool
    env_file: Path | None
    no_sam: bool
    tasks: int
    dead_letter: bool
    periodic: bool
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
        template = args.template.resolve()
        demo = args.demo or is_checkout(template.parent)
        if args.env_file and not args.keep_running:
            raise ValueError("--env-file is written for a stack that stays up: add --keep-running")
        if args.tasks and not demo:
            raise ValueError("--tasks enqueues the example project's no-op task: add --demo")
        return cls(
            template=template,
            parameters=stack_parameters(args.parameter, demo=demo),
            demo=demo,
            env_file=args.env_file.resolve() if args.env_file else None,
            no_sam=args.no_sam,
            tasks=args.tasks,
            dead_letter=args.dead_letter,
            periodic=args.periodic,
            visibility_timeout=args.visibility_timeout,
            timeout=args.timeout if args.timeout is not None else 120 + args.tasks / 10,
            rebuild=args.rebuild,
            keep_running=args.keep_running,
        )


def is_checkout(project: Path) -> bool:
    """Whether project is sqs-tasks' repository, whose example/ the demo mix runs."""
    return (project / "sqs_tasks" / "__init__.py").is_file() and (
        project / "example" / "tasks.py"
    ).is_file()


def stack_parameters(pairs: Sequence[str], *, demo: bool = False) -> dict[str, str]:
    """The local defaults (the demo's with demo), then each KEY=VALUE of --parameter."""
    parameters = dict(DEMO_PARAMETERS if demo else LOCAL_PARAMETERS)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--parameter wants KEY=VALUE, not {pair!r}")
        parameters[key] = value
    return parameters
