"""SQSBackend: Django's task backend API over a DynamoDB result store and SQS queues."""

from __future__ import annotations

import logging
import os
import threading
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from botocore.endpoint import MAX_POOL_CONNECTIONS
from botocore.exceptions import ClientError
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.tasks import Task, TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from . import offload
from .aws.queue import QueueClient
from .aws.retries import maybe_applied
from .aws.schedule import Scheduler
from .aws.store import ResultStore, check_id, conditional_failure
from .conf import ENV_TABLE, parse_options
from .exceptions import EnqueueError, PayloadTooLarge
from .message import MAX_DELAY_SECONDS, Envelope, delay_seconds
from .results import (
    MAX_ITEM_BYTES,
    Item,
    aware_run_after,
    item_size,
    new_item,
    ready_result,
    task_error,
    to_result,
)
from .task import SQSTask

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .bulk import BulkEntry

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("sqs_tasks.backend")

# Keep room in the item for what a run adds (worker ids, errors, return value).
ENQUEUE_HEADROOM_BYTES = 16 * 1024


class SQSBackend(BaseTaskBackend):
    """Results in DynamoDB, one SQS queue per Django queue, executed by lambda_handler."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True
    task_class = SQSTask

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.config = parse_options(alias, self.options)
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The low-level client for service (what boto3.client makes), made once on first use."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    from .aws.session import new_session  # Deferred: settings import this module.

                    if self._session is None:
                        # One session for every service parses botocore's data once (~40 ms
                        # less per cold start), and botocore alone skips boto3's import
                        # (~16 ms), which adds nothing to a low-level client.
                        self._session = new_session()
                    region = self.config.region_name
                    if region is None and self._session.get_config_variable("region") is None:
                        region = os.environ.get("AWS_REGION")  # botocore reads only the default
                    client = self._session.create_client(
                        service,
                        region_name=region,
                        endpoint_url=self.config.endpoint_url,
                        config=self.config.client_config,
                    )
                    self._clients[service] = client
        return client

    @cached_property
    def store(self) -> ResultStore:
        """The results table."""
        if not self.config.table_name:
            raise ImproperlyConfigured(
                f"TASKS[{self.alias!r}] has no results table: set OPTIONS['TABLE_NAME'] "
                f"or the {ENV_TABLE} environment variable."
            )
        return ResultStore(
            lambda: self.client("dynamodb"), self.config.table_name, self.config.result_ttl
        )

    @cached_property
    def queue(self) -> QueueClient:
        """The task queues."""
        return QueueClient(
            lambda: self.client("sqs"),
            alias=self.alias,
            queue_urls=self.config.queue_urls,
            prefix=self.config.queue_name_prefix,
        )

    @cached_property
    def scheduler(self) -> Scheduler | None:
        """EventBridge Scheduler for waits over 15 minutes, when the stack provides it."""
        group, role = self.config.schedule_group, self.config.scheduler_role_arn
        if group is None or role is None:
            return None
        return Scheduler(lambda: self.client("scheduler"), group=group, role_arn=role)

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks, plus the retry settings of an SQSTask."""
        super().validate_task(task)
        if isinstance(task, SQSTask):
            task.validate_retries()

    def needs_schedule(self, run_after: datetime | None, now: datetime) -> bool:
        """Whether the wait until run_after goes to EventBridge Scheduler, not an SQS delay."""
        return (
            run_after is not None
            and self.scheduler is not None
            and (run_after - now).total_seconds() > MAX_DELAY_SECONDS
        )

    def dispatch(self, envelope: Envelope, run_after: datetime | None, now: datetime) -> None:
        """Make the message due at run_after: an SQS delay up to 15 minutes, else a schedule."""
        if run_after is not None and self.needs_schedule(run_after, now):
            assert self.scheduler is not None  # needs_schedule() checked it
            queue_arn = self.queue.arn(envelope.queue_name)
            self.scheduler.schedule(envelope.result_id, queue_arn, envelope.encode(), run_after)
        else:
            delay = delay_seconds(run_after, now)
            self.queue.send(envelope.queue_name, envelope.encode(), delay=delay)

    def enqueue(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """Write the READY result, then send its message; undo truthfully if the send fails."""
        result = self.store_and_send(task, args, kwargs)
        task_enqueued.send(type(self), task_result=result)
        return result

    def store_and_send(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """enqueue() without its task_enqueued signal."""
        self.validate_task(task)
        task = aware_run_after(task)
        now = datetime.now(UTC)
        result = ready_result(task, args, kwargs, backend=self.alias, now=now)
        item = self._new_item(result, now)
        envelope = Envelope.of(result)
        self.queue.url(task.queue_name)  # Fail on an unmapped queue before writing anything.
        try:
            self._put(item)
        except Exception as e:
            if maybe_applied(e):  # A timed-out write may have landed: no READY orphan.
                self.abandon(result, f"the result could not be stored: {e}")
            raise
        try:
            self.dispatch(envelope, task.run_after, now)
        except Exception as e:
            outcome = self.abandon(result, f"SQS message could not be sent: {e}")
            raise EnqueueError(
                f"Task {task.module_path} result {result.id} was stored but its SQS message "
                f"could not be sent ({e}); the result is {outcome}."
            ) from e
        return result

    def _new_item(self, result: TaskResult[..., Any], now: datetime) -> Item:
        try:
            item = new_item(result, ttl=self.config.result_ttl, now=now)
        except ValueError as e:  # NaN and infinities pass normalize_json but are not JSON.
            raise TypeError(f"Task arguments are not JSON serializable: {e}") from e
        size = item_size(item)
        if size > MAX_ITEM_BYTES - ENQUEUE_HEADROOM_BYTES:
            raise PayloadTooLarge(
                f"Task {result.task.module_path} arguments take {size:,} bytes once stored; "
                f"the limit is {MAX_ITEM_BYTES - ENQUEUE_HEADROOM_BYTES:,} bytes (DynamoDB's "
                f"{MAX_ITEM_BYTES:,}-byte item limit less room for the run). Pass a reference "
                "(an S3 key, a primary key) instead."
            )
        return item

    def _put(self, item: Item) -> None:
        try:
            self.store.put_new(item)
        except ClientError as e:
            # Ids are 128 random bits: a refused put is our own write retried by botocore.
            if not conditional_failure(e):
                raise

    def abandon(self, result: TaskResult[..., Any], why: str) -> str:
        """Mark a stored result nobody will run FAILED; returns what became of it, for errors."""
        try:
            marked = self.store.fail_abandoned(
                result.id,
                task_error(EnqueueError(why)),
                queue_name=result.task.queue_name,
                now=datetime.now(UTC),
            )
        except Exception as e:
            logger.exception("Result %s could not be marked FAILED", result.id)
            return f"not marked FAILED ({e}): it may stay READY with no message"
        if marked:
            return "marked FAILED"
        # Never stored after all, or the message did go and a worker has the result.
        return "not marked FAILED: no READY result (never stored, or its message went after all)"

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """Read a result with a consistent read."""
        item = self.store.get(result_id) if check_id(result_id) else None
        if item is None:
            raise TaskResultDoesNotExist(result_id)
        return to_result(item)

    def get_results(self, result_ids: Iterable[str]) -> list[TaskResult[..., Any]]:
        """Read many results, in input order, with consistent reads of up to 100 a request."""
        from .bulk import get_results

        return get_results(self, result_ids)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Configuration problems that would make every enqueue fail."""
        from .checks import backend_errors

        return [*super().check(**kwargs), *backend_errors(self)]

    def enqueue_many(self, entries: Iterable[BulkEntry]) -> list[TaskResult[..., Any]]:
        """Enqueue (task, args, kwargs) entries in batches; results come back in input order."""
        from .bulk import enqueue_many  # Workers never bulk-enqueue: kept out of their boot.

        return enqueue_many(self, entries)

    # Async: the AWS requests run on a bounded pool (sqs_tasks.offload), so concurrent calls
    # from one event loop overlap; task_enqueued is sent as Django sends signals from async code.

    @property
    def async_width(self) -> int:
        """How many async calls of this backend make their requests at once."""
        width = getattr(self.config.client_config, "max_pool_connections", None)
        return int(width or MAX_POOL_CONNECTIONS)

    async def aenqueue(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """See enqueue()."""
        result = await offload.run(
            self.alias, self.async_width, self.store_and_send, task, args, kwargs
        )
        await task_enqueued.asend(type(self), task_result=result)
        return result

    async def aget_result(self, result_id: str) -> TaskResult[..., Any]:
        """See get_result()."""
        return await offload.run(self.alias, self.async_width, self.get_result, result_id)

    async def aget_results(self, result_ids: Iterable[str]) -> list[TaskResult[..., Any]]:
        """See get_results()."""
        return await offload.run(self.alias, self.async_width, self.get_results, result_ids)

    async def aenqueue_many(self, entries: Iterable[BulkEntry]) -> list[TaskResult[..., Any]]:
        """See enqueue_many(); task_enqueued goes out for what was enqueued, even if some failed."""
        from .bulk import enqueue_many

        enqueued: list[TaskResult[..., Any]] = []
        try:
            return await offload.run(
                self.alias, self.async_width, enqueue_many, self, entries, enqueued.append
            )
        finally:
            for result in enqueued:
                await task_enqueued.asend(type(self), task_result=result)
