"""The backend's system checks: configuration that would make every enqueue fail.

backend_errors() runs with every `manage.py check` (SQSBackend.check(), which Django's task
checks call); missing_resources() only with `manage.py check --deploy` (see apps.py): it calls
AWS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .conf import ENV_QUEUE_PREFIX, ENV_TABLE, BackendOptions
from .exceptions import ResourceNotFound
from .producer import STORE_BOUND, Producer, longest_write


def options_error(error: ImproperlyConfigured) -> checks.CheckMessage:
    """OPTIONS that do not parse: an unknown key, a value of the wrong kind."""
    return checks.Error(
        str(error),
        hint="See the OPTIONS reference of sqs-tasks; unknown keys are refused, not ignored.",
        id="sqs_tasks.E004",
    )


def backend_errors(
    alias: str, config: BackendOptions, queues: Set[str]
) -> list[checks.CheckMessage]:
    """A missing table, unmapped queues, an empty QUEUES list, writes slower than a worker waits."""
    errors: list[checks.CheckMessage] = []
    if not config.table_name:
        errors.append(
            checks.Error(
                f"Task backend {alias!r} has no results table.",
                hint=f"Set OPTIONS['TABLE_NAME'] or the {ENV_TABLE} environment variable.",
                id="sqs_tasks.E001",
            )
        )
    if config.queue_name_prefix is None:
        missing = sorted(queues - set(config.queue_urls))
        if missing:
            errors.append(
                checks.Error(
                    f"Task backend {alias!r} has no SQS queue for {', '.join(map(repr, missing))}.",
                    hint=(
                        "Map each of QUEUES in OPTIONS['QUEUE_URLS'], or set "
                        f"OPTIONS['QUEUE_NAME_PREFIX'] or {ENV_QUEUE_PREFIX}."
                    ),
                    id="sqs_tasks.E002",
                )
            )
    if not queues:
        errors.append(
            checks.Error(
                f"Task backend {alias!r} has an empty QUEUES list.",
                hint="List the Django queue names this backend sends to.",
                id="sqs_tasks.E003",
            )
        )
    errors.extend(periodic_errors(alias, config, queues))
    errors.extend(slow_writes(alias, config))
    return errors


def slow_writes(alias: str, config: BackendOptions) -> list[checks.CheckMessage]:
    """CLIENT_CONFIG that lets one write outlast the time a worker waits for its item."""
    longest = longest_write(config.client_config)
    if longest <= STORE_BOUND:
        return []
    return [
        checks.Warning(
            f"Task backend {alias!r}'s CLIENT_CONFIG lets one PutItem take up to "
            f"{longest.total_seconds():.0f} s (tries x (connect_timeout + read_timeout) + "
            f"backoff); a worker waits {STORE_BOUND.total_seconds():.0f} s for the item of a "
            "message that came first, so a write landing later would leave a READY result "
            "whose message was dropped.",
            hint="Lower CLIENT_CONFIG's retries max_attempts, connect_timeout or read_timeout.",
            id="sqs_tasks.W001",
        )
    ]


def periodic_errors(
    alias: str, config: BackendOptions, queues: Set[str]
) -> list[checks.CheckMessage]:
    """Each PERIODIC entry runs a Task of this backend, on one of its queues."""
    from django.tasks.exceptions import InvalidTask

    from .results import load_task

    errors: list[checks.CheckMessage] = []
    for periodic in config.periodic.values():
        where = f"TASKS[{alias!r}]['OPTIONS']['PERIODIC'][{periodic.name!r}]"
        try:
            task = load_task(periodic.task_path)
        except InvalidTask as e:
            problem = str(e)
        else:
            problem = ""
            if task.backend != alias:
                problem = f"{periodic.task_path} is a task of backend {task.backend!r}"
            elif task.queue_name not in queues:
                problem = f"{periodic.task_path} runs on queue {task.queue_name!r}, not in QUEUES"
        if problem:
            errors.append(
                checks.Error(
                    f"{where} cannot run: {problem}.",
                    hint="Name a task of this backend (a dotted path to an @task function).",
                    id="sqs_tasks.E007",
                )
            )
    return errors


def missing_resources(producer: Producer, queues: Iterable[str]) -> list[checks.CheckMessage]:
    """Look up the table (GetItem) and each queue (GetQueueUrl); name what is missing."""
    errors: list[checks.CheckMessage] = []
    lookups: list[tuple[str, Callable[[], object]]] = [
        (f"queue {name!r}", partial(producer.queue.verify, name)) for name in sorted(queues)
    ]
    if producer.config.table_name:
        lookups.insert(0, ("results table", producer.store.verify))
    for what, lookup in lookups:
        try:
            lookup()
        except ResourceNotFound as e:
            errors.append(checks.Error(str(e), id="sqs_tasks.E005"))
        except (ClientError, BotoCoreError) as e:
            errors.append(
                checks.Error(
                    f"Task backend {producer.alias!r} could not look up its {what}: {e}",
                    hint="Check the AWS credentials, region and ENDPOINT_URL this process uses.",
                    id="sqs_tasks.E006",
                )
            )
    return errors
