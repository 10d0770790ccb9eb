"""The `sqs-tasks` command: write a project's SAM stack, and run it on an embedded AWS."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from ..ops.tables import describe, format_table


def _setup_django(settings_module: str) -> None:
    # Like manage.py: the project lives in the current directory.
    sys.path.insert(0, os.getcwd())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


def demo(args: argparse.Namespace) -> int:
    """Enqueue the example tasks on moto, run them through the Lambda handler, print results."""
    _setup_django(args.settings)
    from django.tasks import task_backends

    from example import tasks

    from ..backend import SQSBackend
    from ..testing import aws_stack, drain

    with aws_stack() as stack:
        print(f"Embedded AWS (moto server) at {stack.endpoint_url}")
        later = datetime.now(UTC) + timedelta(hours=1)
        expected = {
            tasks.add.enqueue(2, 3).id: "SUCCESSFUL",
            tasks.shout.enqueue("hello").id: "SUCCESSFUL",
            tasks.whoami.enqueue().id: "SUCCESSFUL",
            tasks.fan_out.enqueue(2).id: "SUCCESSFUL",
            tasks.fail.enqueue("failing on purpose").id: "FAILED",
            tasks.add.using(run_after=later).enqueue(40, 2).id: "READY",
        }
        print(f"Enqueued {len(expected)} tasks; draining the queues through lambda_handler...")
        processed = drain()
        print(f"Processed {processed} messages.\n")
        backend = task_backends["default"]
        assert isinstance(backend, SQSBackend)
        results = backend.get_results(list(expected))
        children = backend.get_results(
            [
                child
                for r in results
                if r.task.name == "fan_out" and r.status == "SUCCESSFUL"
                for child in r.return_value
            ]
        )
        expected.update({c.id: "SUCCESSFUL" for c in children})
        everything = results + children
        headers = ["id", "task", "queue", "prio", "status", "tries", "took", "result / error"]
        print(format_table(headers, [describe(r) for r in everything]))
        wrong = [r for r in everything if r.status != expected[r.id]]
    if wrong:
        for r in wrong:
            print(
                f"\n{r.id}: {r.task.name} is {r.status}, expected {expected[r.id]}", file=sys.stderr
            )
        return 1
    print(f"\nAll {len(everything)} tasks reached the state they should.")
    return 0


def init(args: argparse.Namespace) -> int:
    """Write the SAM stack (template.yaml, infra/, samconfig.toml) of the Django project in this
    folder, for its settings; `sam build && sam deploy --guided` then deploys that project."""
    from ..stack.init import main as run_init

    return run_init(args)


def local(args: argparse.Namespace) -> int:
    """Deploy the project's SAM stack (written by `sqs-tasks init`) into an embedded moto server
    and run its tasks through emulated Lambda event source mappings."""
    from ..local.run import main as run_local

    return run_local(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sqs-tasks` console script."""
    parser = argparse.ArgumentParser(prog="sqs-tasks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help=demo.__doc__)
    demo_parser.add_argument("--settings", default="example.settings", help="settings module")
    demo_parser.set_defaults(run=demo)
    init_parser = commands.add_parser(
        "init",
        help="write template.yaml, infra/ and samconfig.toml for the Django project here",
        description=init.__doc__,
    )
    from ..stack.init import add_arguments as add_init_arguments  # Imports no Django.

    add_init_arguments(init_parser)
    init_parser.set_defaults(run=init)
    local_parser = commands.add_parser(
        "local",
        help="deploy the project's template.yaml into an embedded moto server and run the "
        "project's tasks on it as Lambda would",
        description=local.__doc__,
    )
    from ..local.options import add_arguments  # Imports neither Django nor boto3.

    add_arguments(local_parser)
    local_parser.set_defaults(run=local)
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
