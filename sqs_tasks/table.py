"""The results table's reads, and its batched writes: many items a request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import backoff
from .items import Item

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


class Table:
    """One DynamoDB table through a lazily made client: consistent reads and batch puts."""

    def __init__(self, client: Callable[[], Any], table_name: str):
        self._client = client
        self.table_name = table_name

    def get(self, result_id: str) -> Item | None:
        """Read an item with a consistent read, so a refresh never goes back in time."""
        response = self._client().get_item(
            TableName=self.table_name, Key={"id": {"S": result_id}}, ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item

    def get_many(self, result_ids: Sequence[str]) -> dict[str, Item]:
        """Read items with consistent BatchGetItem reads, 100 a call; absent ids are left out."""
        found: dict[str, Item] = {}
        unique = list(dict.fromkeys(result_ids))  # BatchGetItem refuses a key asked for twice.
        for start in range(0, len(unique), 100):
            keys = [{"id": {"S": result_id}} for result_id in unique[start : start + 100]]
            for attempt in range(backoff.BATCH_ATTEMPTS):
                if attempt:
                    backoff.pause(attempt)
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

    def put_many(self, items: Sequence[Item]) -> dict[str, Unwritten]:
        """Write fresh items with BatchWriteItem, 25 a call; returns those not written, by id."""
        # No condition is possible here: ids are 128 random bits, so none is overwritten.
        unwritten: dict[str, Unwritten] = {}
        for start in range(0, len(items), 25):
            pending = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            for attempt in range(backoff.BATCH_ATTEMPTS):
                if attempt:
                    backoff.pause(attempt)
                try:
                    response = self._client().batch_write_item(
                        RequestItems={self.table_name: pending}
                    )
                except (ClientError, BotoCoreError) as e:
                    why = Unwritten(f"BatchWriteItem failed: {e}", backoff.maybe_applied(e))
                    unwritten.update((r["PutRequest"]["Item"]["id"]["S"], why) for r in pending)
                    break
                # Throttled: DynamoDB hands back what it did not write, to be sent again.
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
            else:
                why = Unwritten(f"unprocessed after {backoff.BATCH_ATTEMPTS} attempts", False)
                unwritten.update((r["PutRequest"]["Item"]["id"]["S"], why) for r in pending)
        return unwritten
