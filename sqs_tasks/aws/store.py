"""The DynamoDB results table: consistent reads, batched writes, and every state change as
one conditional request."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import batched
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError

from ..exceptions import missing_table
from ..results import (
    FAILURE_SHARDS,
    Item,
    error_value,
    errors_with,
    expiry,
    failure_partition,
    timestamp,
)
from . import retries

READY = TaskResultStatus.READY.value
RUNNING = TaskResultStatus.RUNNING.value
FAILED = TaskResultStatus.FAILED.value
SUCCESSFUL = TaskResultStatus.SUCCESSFUL.value
TERMINAL = frozenset({FAILED, SUCCESSFUL})

# Named conditions, so each request says which promise it keeps.
COND_NEW = "attribute_not_exists(id)"
# Claimable: READY and due, or RUNNING under a lease its worker let lapse (it died).
COND_CLAIMABLE = (
    "(#status = :ready AND (attribute_not_exists(run_after) OR run_after <= :now))"
    " OR (#status = :running AND lease_until < :now)"
)
# Only the attempt that holds the claim may record its outcome.
COND_OWNER = "#status = :running AND attempts = :attempt"
# Abandoned: never sent (enqueue's send failed), or left by a worker that died.
COND_ABANDONED = "#status = :ready OR (#status = :running AND lease_until < :now)"
# Dead-lettered while nothing else will run it: left by a worker that died, or READY and due
# with no newer message than the letter. A READY result whose run_after is ahead waits for
# its message or schedule; one a retry put back to READY (attempts > 0) has that retry's
# message, sent after its attempt started, so a letter sent before then is a stale duplicate.
COND_DEAD_LETTERED = (
    "(#status = :ready AND (attribute_not_exists(run_after) OR run_after <= :now)"
    " AND (attempts = :zero OR last_attempted_at < :sent))"
    " OR (#status = :running AND lease_until < :now)"
)

FAILURES_INDEX = "failures"

# DynamoDB refuses an empty key, or one over 2,048 bytes, with a ValidationException.
MAX_KEY_BYTES = 2048


def check_id(result_id: object) -> bool:
    """Whether result_id could name an item (else none exists); a non-string is a TypeError."""
    if not isinstance(result_id, str):
        raise TypeError(f"Result ids must be strings, not {result_id!r}.")
    return 0 < len(result_id.encode()) <= MAX_KEY_BYTES


@dataclass(frozen=True, slots=True)
class Unwritten:
    """An item put_many could not write: why, and whether the write may have landed anyway."""

    reason: str
    uncertain: bool


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of a claim: the claimed item, or the item as it stood (None if absent)."""

    claimed: bool
    item: Item | None


def _with_expiry(
    sets: list[str], values: dict[str, Any], expires: dict[str, str] | None
) -> list[str]:
    """An update's SET clauses, with expires_at among them when results expire at all."""
    if expires is None:
        return sets
    values[":exp"] = expires
    return [*sets, "expires_at = :exp"]


def conditional_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def no_table(error: Exception) -> bool:
    """Whether error says the table does not exist (what a wrong name or region gets)."""
    return (
        isinstance(error, ClientError)
        and error.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
    )


class ResultStore:
    """Result items in one table, through a lazily made client."""

    def __init__(self, client: Callable[[], Any], table_name: str, ttl: timedelta | None):
        self._client = client
        self.table_name = table_name
        self.ttl = ttl

    @contextmanager
    def named(self) -> Iterator[None]:
        """Turn a missing table into ResourceNotFound naming it and the settings to fix."""
        try:
            yield
        except ClientError as e:
            if no_table(e):
                raise missing_table(self.table_name, self._client().meta.region_name) from e
            raise

    def verify(self) -> None:
        """Look the table up; ResourceNotFound names it if it is missing."""
        # A GetItem of a key no result has: the stack's producer and worker policies allow
        # it, where DescribeTable would need a permission of its own.
        with self.named():
            self._client().get_item(
                TableName=self.table_name,
                Key={"id": {"S": "sqs-tasks-check"}},
                ProjectionExpression="id",
            )

    def get(self, result_id: str) -> Item | None:
        """Read an item with a consistent read, so a refresh never goes back in time."""
        with self.named():
            response = self._client().get_item(
                TableName=self.table_name, Key={"id": {"S": result_id}}, ConsistentRead=True
            )
        item: Item | None = response.get("Item")
        return item

    def get_many(self, result_ids: Sequence[str]) -> dict[str, Item]:
        """Read items with consistent BatchGetItem reads, 100 a call; absent ids are left out."""
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(result_ids))  # BatchGetItem refuses a key asked for twice.
        for chunk in batched(unique, 100):
            keys = [{"id": {"S": result_id}} for result_id in chunk]
            for attempt in range(retries.BATCH_ATTEMPTS):
                if attempt:
                    retries.pause(attempt)
                with self.named():
                    response = self._client().batch_get_item(
                        RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}}
                    )
                got = response.get("Responses", {}).get(self.table_name, [])
                found.update((item["id"]["S"], item) for item in got)
                # Throttled, or past 16 MB: DynamoDB hands back the keys it did not read.
                keys = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                if not keys:
                    break
            # Still unread after the bound: one GetItem each, under botocore's own retries.
            for key in keys:
                item = self.get(key["id"]["S"])
                if item is not None:
                    found[key["id"]["S"]] = item
        return found

    def put_many(
        self, items: Sequence[Item], written: Callable[[list[str]], None] | None = None
    ) -> dict[str, Unwritten]:
        """Write fresh items with BatchWriteItem, 25 a call; returns those not written, by id.

        written, if given, is called after each call with the ids it wrote.
        """
        # No condition is possible here: ids are 128 random bits, so none is overwritten.
        unwritten: dict[str, Unwritten] = {}
        for number, chunk in enumerate(batched(items, 25)):
            pending = [{"PutRequest": {"Item": item}} for item in chunk]
            for attempt in range(retries.BATCH_ATTEMPTS):
                if attempt:
                    retries.pause(attempt)
                try:
                    response = self._client().batch_write_item(
                        RequestItems={self.table_name: pending}
                    )
                except (ClientError, BotoCoreError) as e:
                    if number == 0 and no_table(e):  # Nothing written: say so, and why.
                        raise missing_table(self.table_name, self._client().meta.region_name) from e
                    why = Unwritten(f"BatchWriteItem failed: {e}", retries.maybe_applied(e))
                    unwritten.update((r["PutRequest"]["Item"]["id"]["S"], why) for r in pending)
                    break
                # Throttled: DynamoDB hands back what it did not write, to be sent again.
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
            else:
                why = Unwritten(f"unprocessed after {retries.BATCH_ATTEMPTS} attempts", False)
                unwritten.update((r["PutRequest"]["Item"]["id"]["S"], why) for r in pending)
            if written is not None:
                ids = [item["id"]["S"] for item in chunk]
                written([result_id for result_id in ids if result_id not in unwritten])
        return unwritten

    def put_new(self, item: Item) -> None:
        """Write a fresh READY item; an id collision is an error, never an overwrite."""
        with self.named():
            self._client().put_item(
                TableName=self.table_name, Item=item, ConditionExpression=COND_NEW
            )

    def discard_unsent(self, result_id: str) -> bool:
        """Delete a READY item whose message was never sent; False if it is not READY."""
        try:
            self._client().delete_item(
                TableName=self.table_name,
                Key={"id": {"S": result_id}},
                ConditionExpression="#status = :ready",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":ready": {"S": READY}},
            )
        except ClientError as e:
            if conditional_failure(e):
                return False
            raise
        return True

    def claim_new(self, item: Item, worker_id: str, now: datetime, lease_until: datetime) -> Claim:
        """Write a fresh result already claimed by worker_id (a periodic firing): one request.

        Refused (Claim(False, None)) when the result exists: a duplicate or a retry of the
        firing, which the ordinary claim then settles.
        """
        claimed: Item = {
            **item,
            "status": {"S": RUNNING},
            "attempts": {"N": "1"},
            "worker_ids": {"L": [{"S": worker_id}]},
            "started_at": {"S": timestamp(now)},
            "last_attempted_at": {"S": timestamp(now)},
            "lease_until": {"S": timestamp(lease_until)},
        }
        try:
            self._client().put_item(
                TableName=self.table_name, Item=claimed, ConditionExpression=COND_NEW
            )
        except ClientError as e:
            if conditional_failure(e):
                return Claim(claimed=False, item=None)
            raise
        return Claim(claimed=True, item=claimed)

    def claim(self, result_id: str, worker_id: str, now: datetime, lease_until: datetime) -> Claim:
        """Take a due result for one attempt; returns the new item or the one that refused."""
        claimed, response = self._update(
            Key={"id": {"S": result_id}},
            UpdateExpression=(
                "SET #status = :running, worker_ids = list_append(worker_ids, :worker),"
                " started_at = if_not_exists(started_at, :now),"
                " last_attempted_at = :now, lease_until = :lease ADD attempts :one"
            ),
            ConditionExpression=COND_CLAIMABLE,
            ExpressionAttributeValues={
                ":ready": {"S": READY},
                ":running": {"S": RUNNING},
                ":now": {"S": timestamp(now)},
                ":lease": {"S": timestamp(lease_until)},
                ":one": {"N": "1"},
                ":worker": {"L": [{"S": worker_id}]},
            },
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        # Refused: the item as it stood (absent for an unknown id) says why.
        return Claim(claimed=claimed, item=response.get("Attributes" if claimed else "Item"))

    def finish(
        self,
        item: Item,
        *,
        now: datetime,
        return_json: str | None = None,
        error: TaskError | None = None,
    ) -> bool:
        """Record an attempt's outcome; False if a newer attempt took the result over."""
        # Every other write changes status or attempts, so while COND_OWNER holds the item is
        # the one this attempt claimed: a whole-item put is the update, at no extra write units
        # and without an update expression to parse.
        done = {name: value for name, value in item.items() if name != "lease_until"}
        done["finished_at"] = {"S": timestamp(now)}
        if error is None:
            done["status"] = {"S": SUCCESSFUL}
            done["return_value"] = {"S": return_json if return_json is not None else "null"}
        else:
            done["status"] = {"S": FAILED}
            done["errors"] = errors_with(item, error)
            done["failure_pk"] = {"S": failure_partition(item["queue_name"]["S"], item["id"]["S"])}
        expires = expiry(now, self.ttl)
        if expires is not None:
            done["expires_at"] = expires
        try:
            self._client().put_item(
                TableName=self.table_name,
                Item=done,
                ConditionExpression=COND_OWNER,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":running": {"S": RUNNING},
                    ":attempt": item["attempts"],
                },
            )
        except ClientError as e:
            if conditional_failure(e):
                return False
            raise
        return True

    def extend_lease(self, result_id: str, attempts: dict[str, str], until: datetime) -> bool:
        """Push a running attempt's lease to until; False once the attempt no longer holds it."""
        values: dict[str, Any] = {
            ":running": {"S": RUNNING},
            ":attempt": attempts,
            ":lease": {"S": timestamp(until)},
        }
        # Beyond what enqueue allowed for, the result must outlive its lease.
        sets = _with_expiry(["lease_until = :lease"], values, expiry(until, self.ttl, pending=True))
        extended, _ = self._update(
            Key={"id": {"S": result_id}},
            UpdateExpression=f"SET {', '.join(sets)}",
            ConditionExpression=COND_OWNER,
            ExpressionAttributeValues=values,
        )
        return extended

    def retry(self, item: Item, *, now: datetime, error: TaskError, run_after: datetime) -> bool:
        """Put a failed attempt back to READY until run_after; False if it lost its claim."""
        values: dict[str, Any] = {
            ":ready": {"S": READY},
            ":running": {"S": RUNNING},
            ":attempt": item["attempts"],
            ":run_after": {"S": timestamp(run_after)},
            # The whole list, fitted to the item limit: while COND_OWNER holds it is the claim's.
            ":errors": errors_with(item, error),
        }
        sets = ["#status = :ready", "run_after = :run_after", "errors = :errors"]
        expires = expiry(run_after, self.ttl, pending=True)  # It must outlive its wait.
        return self._release(item["id"]["S"], sets, COND_OWNER, values, expires)

    def fail_abandoned(
        self,
        result_id: str,
        error: TaskError,
        *,
        queue_name: str,
        now: datetime,
        dead_letter_sent: datetime | None = None,
    ) -> bool:
        """Mark a result nobody will run FAILED; False if it finished or a live worker holds it.

        With dead_letter_sent (the SentTimestamp of a dead-lettered message), a READY result
        is failed only if that letter is its last message (COND_DEAD_LETTERED).
        """
        condition = COND_ABANDONED
        values: dict[str, Any] = {
            ":ready": {"S": READY},
            ":running": {"S": RUNNING},
            ":status": {"S": FAILED},
            ":now": {"S": timestamp(now)},
            ":error": {"L": [error_value(error)]},
            ":fpk": {"S": failure_partition(queue_name, result_id)},
        }
        sets = [
            "#status = :status",
            "finished_at = :now",
            "errors = list_append(errors, :error)",
            "failure_pk = :fpk",
        ]
        if dead_letter_sent is not None:
            condition = COND_DEAD_LETTERED
            values[":zero"] = {"N": "0"}
            values[":sent"] = {"S": timestamp(dead_letter_sent)}
        return self._release(result_id, sets, condition, values, expiry(now, self.ttl))

    def _release(
        self,
        result_id: str,
        sets: list[str],
        condition: str,
        values: dict[str, Any],
        expires: dict[str, str] | None,
    ) -> bool:
        """Apply sets and drop the lease, under condition; False when the condition refused it."""
        sets = _with_expiry(sets, values, expires)
        updated, _ = self._update(
            Key={"id": {"S": result_id}},
            UpdateExpression=f"SET {', '.join(sets)} REMOVE lease_until",
            ConditionExpression=condition,
            ExpressionAttributeValues=values,
        )
        return updated

    def _update(self, **request: Any) -> tuple[bool, dict[str, Any]]:
        """One conditional UpdateItem: (True, its response), or (False, the refusal's)."""
        try:
            response: dict[str, Any] = self._client().update_item(
                TableName=self.table_name,
                ExpressionAttributeNames={"#status": "status"},
                **request,
            )
        except ClientError as e:
            if conditional_failure(e):
                return False, dict(e.response)
            raise
        return True, response

    def failures(self, queue_name: str, *, limit: int = 50) -> list[Item]:
        """The newest FAILED items of a queue, merged across the index's shards."""
        found: list[Item] = []
        for shard in range(FAILURE_SHARDS):
            response = self._client().query(
                TableName=self.table_name,
                IndexName=FAILURES_INDEX,
                KeyConditionExpression="failure_pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"{queue_name}#{shard}"}},
                ScanIndexForward=False,
                Limit=limit,
            )
            found.extend(response.get("Items", []))
        found.sort(key=lambda item: item["finished_at"]["S"], reverse=True)
        return found[:limit]
