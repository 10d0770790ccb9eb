"""SQSBackend: Django's task backend API over a DynamoDB result store and SQS queues."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.tasks import Task, TaskResult
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_enqueued

from . import offload
from .arguments import check_arguments
from .aws.queue import QueueClient
from .aws.schedule import Scheduler
from .aws.secrets import SigningSecret
from .aws.store import ResultStore, check_id
from .conf import BackendOptions, parse_options
from .message import Envelope
from .producer import Producer
from .results import aware_run_after, ready_result, to_result
from .task import SQSTask

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .bulk import BulkEntry

P = ParamSpec("P")
R = TypeVar("R")


class SQSBackend(BaseTaskBackend):
    """Results in DynamoDB, one SQS queue per Django queue, executed by lambda_handler."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True
    task_class = SQSTask

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        # A bad OPTIONS is a check error (manage.py check lists it) and raised at first use.
        self._config_error: ImproperlyConfigured | None = None
        try:
            self._config: BackendOptions | None = parse_options(alias, self.options)
        except ImproperlyConfigured as e:
            self._config, self._config_error = None, e

    @property
    def config(self) -> BackendOptions:
        """The parsed OPTIONS; raises ImproperlyConfigured if they are invalid."""
        if self._config is None:
            assert self._config_error is not None
            raise self._config_error
        return self._config

    @cached_property
    def producer(self) -> Producer:
        """The clients, table, queues and enqueue steps of this alias."""
        return Producer(self.alias, self.config)

    def client(self, service: str) -> Any:
        """The low-level client for service (what boto3.client makes), made once on first use."""
        return self.producer.client(service)

    @property
    def store(self) -> ResultStore:
        """The results table."""
        return self.producer.store

    @property
    def queue(self) -> QueueClient:
        """The task queues."""
        return self.producer.queue

    @property
    def scheduler(self) -> Scheduler | None:
        """EventBridge Scheduler for waits over 15 minutes, when the stack provides it."""
        return self.producer.scheduler

    @property
    def signing(self) -> SigningSecret | None:
        """The secret holding the message signing key, or None to sign with SECRET_KEY."""
        return self.producer.signing

    def validate_task(self, task: Task[..., Any]) -> None:
        """Django's checks, plus the retry settings of an SQSTask."""
        super().validate_task(task)
        if isinstance(task, SQSTask):
            task.validate_retries()

    def dispatch(self, envelope: Envelope, run_after: datetime | None, now: datetime) -> None:
        """Make the message due at run_after: an SQS delay up to 15 minutes, else a schedule."""
        self.producer.dispatch(envelope, run_after, now)

    def enqueue(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """Write the READY result while its message is sent; undo truthfully if either fails."""
        result = self.store_and_send(task, args, kwargs)
        task_enqueued.send(type(self), task_result=result)
        return result

    def store_and_send(
        self, task: Task[P, R], args: list[Any], kwargs: dict[str, Any]
    ) -> TaskResult[P, R]:
        """enqueue() without its task_enqueued signal."""
        self.validate_task(task)
        producer = self.producer
        check_arguments(task.module_path, args, kwargs)  # Named, before Django's own check.
        task = aware_run_after(task)
        now = datetime.now(UTC)
        result = ready_result(task, args, kwargs, backend=self.alias, now=now)
        item = producer.new_item(result, now)
        envelope = Envelope.of(result)
        producer.queue.url(task.queue_name)  # Fail on an unmapped queue before writing anything.
        producer.signing_ready()
        producer.store_and_dispatch(result, item, envelope, task.run_after, now)
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        """Read a result with a consistent read."""
        item = self.store.get(result_id) if check_id(result_id) else None
        if item is None:
            raise TaskResultDoesNotExist(result_id)
        return to_result(item)

    def get_results(self, result_ids: Iterable[str]) -> list[TaskResult[..., Any]]:
        """Read many results, in input order, with consistent reads of up to 100 a request."""
        from .bulk import get_results

        return get_results(self.store, result_ids)

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        """Configuration problems that would make every enqueue fail."""
        from .checks import backend_errors, options_error

        if self._config is None:
            assert self._config_error is not None
            return [*super().check(**kwargs), options_error(self._config_error)]
        return [*super().check(**kwargs), *backend_errors(self.alias, self.config, self.queues)]

    def enqueue_many(self, entries: Iterable[BulkEntry]) -> list[TaskResult[..., Any]]:
        """Enqueue (task, args, kwargs) entries in batches; results come back in input order."""
        from .bulk import enqueue_many  # Workers never bulk-enqueue: kept out of their boot.

        return enqueue_many(self.producer, entries, self.validate_task, sender=type(self))

    # Async: the AWS requests run on a bounded pool (sqs_tasks.offload), so concurrent calls
    # from one event loop overlap; task_enqueued is sent as Django sends signals from async code.

    @property
    def async_width(self) -> int:
        """How many async calls of this backend make their requests at once."""
        return self.producer.width

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

        def enqueue() -> list[TaskResult[..., Any]]:
            return enqueue_many(
                self.producer,
                entries,
                self.validate_task,
                sender=type(self),
                announce=enqueued.append,
            )

        try:
            return await offload.run(self.alias, self.async_width, enqueue)
        finally:
            for result in enqueued:
                await task_enqueued.asend(type(self), task_result=result)
