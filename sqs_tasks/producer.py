"""The enqueue side of a backend: its table, queues and scheduler, and what enqueues share.

SQSBackend (one task) and bulk (many) both build items, store them, dispatch their messages
and abandon what could not be sent through a Producer, so neither imports the other.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import Any

from botocore.config import Config
from botocore.endpoint import MAX_POOL_CONNECTIONS
from botocore.exceptions import ClientError
from django.core.exceptions import ImproperlyConfigured
from django.tasks import TaskResult

from . import offload
from .aws.queue import QueueClient
from .aws.retries import maybe_applied
from .aws.schedule import Scheduler
from .aws.secrets import SigningSecret
from .aws.store import ResultStore, conditional_failure
from .conf import ENV_TABLE, BackendOptions
from .exceptions import EnqueueError, PayloadTooLarge, ResourceNotFound
from .message import MAX_DELAY_SECONDS, Envelope, delay_seconds
from .results import MAX_ITEM_BYTES, Item, item_size, new_item, task_error

logger = logging.getLogger("sqs_tasks.backend")

# Keep room in the item for what a run adds (worker ids, errors, return value).
ENQUEUE_HEADROOM_BYTES = 16 * 1024
# What a message whose write failed becomes (sqs_tasks.worker.unstored keeps the promise).
UNSTORED_FATE = "it runs nothing and is dropped once a few minutes old"
# How long a worker waits for the item of a message that came first: longer than a write can
# take under the default CLIENT_CONFIG (longest_write(), about 3.5 minutes), which has raised
# in enqueue() by then. The system check sqs_tasks.W001 holds other configs to it.
STORE_BOUND = timedelta(minutes=4)
# botocore's standard retry mode: backoff 2^i s at most, capped at 20, plus up to 5 s more
# when AWS asks for it (x-amz-retry-after); without max_attempts, DynamoDB's 4 tries.
BACKOFF_CAP = 20
RETRY_AFTER_MAX = 5
DYNAMODB_DEFAULT_TRIES = 4


class Producer:
    """One backend alias's AWS clients and resources, and the steps of an enqueue."""

    def __init__(self, alias: str, config: BackendOptions) -> None:
        self.alias = alias
        self.config = config
        self._clients: dict[str, Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()
        self._session_lock = threading.Lock()
        # Whether a write found the table: until one has, enqueue writes before it sends, so
        # a missing table (a settings mistake) sends nothing. The first enqueue, like Celery's
        # first call, takes two round trips; the others one.
        self.table_found = False

    @cached_property
    def signing(self) -> SigningSecret | None:
        """The secret holding the message signing key, or None to sign with SECRET_KEY."""
        secret = self.config.signing_secret
        if secret is None:
            return None
        return SigningSecret(lambda: self.client("secretsmanager"), secret)

    def signing_ready(self) -> None:
        """Read the signing key now (cached), so a missing key fails before any write."""
        if self.signing is not None:
            self.signing.keyring()

    def client(self, service: str) -> Any:
        """The low-level client for service (what boto3.client makes), made once on first use."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = self._clients[service] = self.new_client(service)
        return client

    def new_client(self, service: str, **config: Any) -> Any:
        """A client of its own for service, with the backend's settings and config's on top."""
        from .aws.session import new_session  # Deferred: settings import this module.

        with self._session_lock:
            if self._session is None:
                # One session for every service parses botocore's data once (~40 ms less per
                # cold start), and botocore alone skips boto3's import (~16 ms), which adds
                # nothing to a low-level client.
                self._session = new_session()
        region = self.config.region_name
        if region is None and self._session.get_config_variable("region") is None:
            region = os.environ.get("AWS_REGION")  # botocore reads only the default
        client_config = self.config.client_config
        if config:
            client_config = client_config.merge(Config(**config))
        return self._session.create_client(
            service,
            region_name=region,
            endpoint_url=self.config.endpoint_url,
            config=client_config,
        )

    @property
    def width(self) -> int:
        """How many requests of this alias may be in flight at once: its connection pool's size."""
        width = getattr(self.config.client_config, "max_pool_connections", None)
        return int(width or MAX_POOL_CONNECTIONS)

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

    def new_item(self, result: TaskResult[..., Any], now: datetime) -> Item:
        """The READY item of a fresh result, refused if it cannot be stored; nothing is written."""
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

    def put(self, item: Item) -> None:
        """Store a fresh READY item."""
        try:
            self.store.put_new(item)
        except ClientError as e:
            # Ids are 128 random bits: a refused put is our own write retried by botocore.
            if not conditional_failure(e):
                raise

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

    def store_and_dispatch(
        self,
        result: TaskResult[..., Any],
        item: Item,
        envelope: Envelope,
        run_after: datetime | None,
        now: datetime,
    ) -> None:
        """Write item while its message is sent, in one round trip; undo truthfully on failure.

        A message may so arrive before its item: the worker hands it back for a few seconds
        until the item is there, and drops it, nothing run, once the write has clearly failed.
        """
        send = partial(self.dispatch, envelope, run_after, now)
        if self.needs_schedule(run_after, now) or not self.table_found:
            # Two steps: a schedule is made after its item (it is minutes away anyway), and
            # until a write has found the table, a missing one must leave nothing sent.
            self.stored(result, done_now(self.put, item), sent=None)
            self.dispatched(result, done_now(send))
            return
        # The write goes on the pool, the send (the longer round trip) here: this thread holds
        # the GIL until its request is on the wire, so the send is never queued behind the
        # write's serialisation.
        storing = offload.start(self.alias, self.width, self.put, item)
        sending = done_now(send)
        self.stored(result, storing, sent=sending)
        self.dispatched(result, sending)

    def stored(
        self, result: TaskResult[..., Any], storing: Future[None], sent: Future[Any] | None
    ) -> None:
        """Wait for the write; if it failed, fail what may have landed, and raise its error."""
        e = storing.exception()
        if e is None:
            self.table_found = True
            return
        if not isinstance(e, Exception):
            raise e
        if sent is not None:
            went = "was not sent either" if sent.exception() else f"went: {UNSTORED_FATE}"
            e.add_note(f"Result {result.id} was not stored; its message {went}.")
        # A timed-out write may have landed: it must not run. (No table: nothing landed.)
        if maybe_applied(e) and not isinstance(e, ResourceNotFound):
            fate = self.withdraw(result, f"the result could not be stored: {e}")
            e.add_note(f"If the write landed after all, the result is {fate}.")
        raise e

    def dispatched(self, result: TaskResult[..., Any], sending: Future[Any]) -> None:
        """Wait for a stored result's message to go; if it did not, leave no READY orphan."""
        task = result.task
        try:
            sending.result()
        except ResourceNotFound as e:
            # The queue is not there, so surely nothing was sent: take the item back too.
            e.add_note(f"The result is {self.discard(result, str(e))}.")
            raise
        except Exception as e:
            outcome = self.abandon(result, f"SQS message could not be sent: {e}")
            raise EnqueueError(
                f"Task {task.module_path} result {result.id} was stored but its SQS message "
                f"could not be sent ({e}); the result is {outcome}."
            ) from e

    def _fail(self, result: TaskResult[..., Any], why: str) -> bool | Exception:
        """Mark a READY result FAILED: True; False if none was READY; the error if unknown."""
        try:
            return self.store.fail_abandoned(
                result.id,
                task_error(EnqueueError(why)),
                queue_name=result.task.queue_name,
                now=datetime.now(UTC),
            )
        except Exception as e:
            logger.exception("Result %s could not be marked FAILED", result.id)
            return e

    def withdraw(self, result: TaskResult[..., Any], why: str) -> str:
        """After a write that failed but may have landed: fail the item so it never runs."""
        marked = self._fail(result, why)
        if marked is True:
            return "marked FAILED and will not run"
        if marked is False:
            return "not READY: never stored, or (rarely) a worker took it first and may run it"
        return f"unknown ({marked}): if the write landed, the task may run"

    def abandon(self, result: TaskResult[..., Any], why: str) -> str:
        """Mark a stored result nobody will run FAILED; returns what became of it, for errors."""
        marked = self._fail(result, why)
        if isinstance(marked, Exception):
            return f"not marked FAILED ({marked}): it may stay READY with no message"
        if marked:
            return "marked FAILED"
        # Never stored after all, or the message did go and a worker has the result.
        return "not marked FAILED: no READY result (never stored, or its message went after all)"

    def discard(self, result: TaskResult[..., Any], why: str) -> str:
        """Delete a stored result whose message was surely never sent, else abandon it."""
        try:
            if self.store.discard_unsent(result.id):
                return "deleted: nothing was enqueued"
        except Exception as e:
            # The stack's producer policy grants no DeleteItem: FAILED is as truthful.
            logger.warning("Result %s could not be deleted (%s): marking it FAILED", result.id, e)
        return self.abandon(result, why)


def longest_write(config: Config) -> timedelta:
    """The longest one PutItem can take under config: every try timing out, every backoff full."""
    # botocore sets Config's attributes from its options at run time: mypy cannot see them.
    retries: dict[str, Any] = getattr(config, "retries", None) or {}
    if "total_max_attempts" in retries:
        tries = int(retries["total_max_attempts"])
    elif "max_attempts" in retries:
        tries = int(retries["max_attempts"]) + 1  # botocore counts retries, not the first try
    else:
        tries = DYNAMODB_DEFAULT_TRIES
    per_try = getattr(config, "connect_timeout", 0) + getattr(config, "read_timeout", 0)
    backoff = sum(min(2**i, BACKOFF_CAP) + RETRY_AFTER_MAX for i in range(tries - 1))
    return timedelta(seconds=tries * per_try + backoff)


def done_now(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """fn(*args) run here and now, its outcome as a finished Future."""
    done: Future[Any] = Future()
    try:
        done.set_result(fn(*args))
    except Exception as e:
        done.set_exception(e)
    return done
