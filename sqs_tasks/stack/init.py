"""`sqs-tasks init`: write (or check) the SAM stack of the Django project in this folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import Project, ProjectError, Status, statuses, write

EXIT_OK, EXIT_STALE, EXIT_ERROR = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `sqs-tasks init`."""
    parser.add_argument(
        "--settings",
        metavar="MODULE",
        help="the settings module the functions run with (default: the one manage.py sets)",
    )
    parser.add_argument(
        "--force", action="store_true", help="also replace files edited since init wrote them"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 unless every file is what this sqs-tasks would write",
    )
    parser.add_argument(
        "--project", type=Path, default=Path("."), help="the project's root (where manage.py is)"
    )


def main(args: argparse.Namespace) -> int:
    """Run `sqs-tasks init`; returns the exit status."""
    try:
        project = Project.detect(args.project, args.settings)
        found = statuses(project) if args.check else write(project, force=args.force)
    except (ProjectError, SyntaxError, OSError) as e:
        print(f"sqs-tasks init: {e}", file=sys.stderr)
        return EXIT_ERROR
    width = max(map(len, found))
    for name, state in found.items():
        done = "" if args.check or state is Status.CURRENT else "  -> written"
        print(f"  {name:<{width}}  {state}{done}")
    if args.check:
        stale = [n for n, s in found.items() if s is not Status.CURRENT]
        if stale:
            print(
                f"sqs-tasks init --check: {len(stale)} of {len(found)} files differ from what "
                f"this sqs-tasks writes for {project.settings_module}; run sqs-tasks init"
                + (" --force" if any(found[n] in _KEPT for n in stale) else ""),
                file=sys.stderr,
            )
            return EXIT_STALE
        print(f"sqs-tasks init --check: up to date for {project.settings_module}")
        return EXIT_OK
    print(
        f"\nThe stack of {project.settings_module} is in {project.root}. Next:\n"
        "  sqs-tasks local --keep-running     run it on an embedded AWS (moto), print its env\n"
        "  sam build && sam deploy --guided   deploy it to AWS\n"
        "Add .aws-sam/ to your .gitignore."
    )
    return EXIT_OK


_KEPT = (Status.EDITED, Status.FOREIGN)
