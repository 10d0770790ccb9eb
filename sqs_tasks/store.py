"""The DynamoDB results table: every state change is one conditional request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from django.tasks import TaskResultStatus
from django.tasks.base import TaskError

from .items import (
    FAILURE_SHARDS,
    Item,
    error_value,
    errors_with,
    expiry,
    failure_partition,
    timestamp,
)
from .table import Table

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
# Abandoned: never sent, or dead-lettered while no live worker holds it.
COND_ABANDONED = "#status = :ready OR (#status = :running AND lease_until < :now)"

FAILURES_INDEX = "failures"


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


class ResultStore(Table):
    """Result items in one table: reads and batches from Table, and every state change."""

    def __init__(self, client: Callable[[], Any], table_name: str, ttl: timedelta | None):
        super().__init__(client, table_name)
        self.ttl = ttl

    def put_new(self, item: Item) -> None:
        """Write a fresh READY item; an id collision is an error, never an overwrite."""
        self._client().put_item(TableName=self.table_name, Item=item, ConditionExpression=COND_NEW)

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
        self, result_id: str, error: TaskError, *, queue_name: str, now: datetime
    ) -> bool:
        """Mark a result nobody will run FAILED; False if it finished or a live worker holds it."""
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
        return self._release(result_id, sets, COND_ABANDONED, values, expiry(now, self.ttl))

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
