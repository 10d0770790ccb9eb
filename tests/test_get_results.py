"""get_results(): many results read in input order, 100 a request, none silently missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.tasks import TaskResultStatus, default_task_backend
from django.tasks.exceptions import TaskResultDoesNotExist

from sqs_tasks.testing import Stack, drain
from tests import tasks


def _backend() -> Any:
    return default_task_backend


def _finished(n: int) -> list[Any]:
    """add(i, 0) for i in range(n), enqueued in bulk and run."""
    results = _backend().enqueue_many([(tasks.add, [i, 0], {}) for i in range(n)])
    drain()
    return results


@contextmanager
def _after_batch_get(handler: Any) -> Iterator[None]:
    """Rewrite each parsed BatchGetItem response, as DynamoDB under load would answer."""
    client = _backend().client("dynamodb")
    asked: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **kwargs: Any) -> None:
        asked.append(params["RequestItems"])

    def rewrite(parsed: dict[str, Any], **kwargs: Any) -> None:
        handler(parsed, asked[-1])

    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", remember)
    client.meta.events.register("after-call.dynamodb.BatchGetItem", rewrite)
    try:
        yield
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.BatchGetItem", remember)
        client.meta.events.unregister("after-call.dynamodb.BatchGetItem", rewrite)


def test_results_come_back_in_input_order_with_their_outcomes(
    stack: Stack, calls: list[str]
) -> None:
    results = [tasks.add.enqueue(i, 1) for i in range(3)] + [tasks.fail.enqueue("no")]
    drain()
    calls.clear()
    asked: list[dict[str, Any]] = []

    with _after_batch_get(lambda parsed, request: asked.append(request)):
        read = _backend().get_results([r.id for r in reversed(results)])

    assert [r.id for r in read] == [r.id for r in reversed(results)]
    assert [r.status for r in read] == [TaskResultStatus.FAILED] + [TaskResultStatus.SUCCESSFUL] * 3
    assert [r.return_value for r in read[1:]] == [3, 2, 1]
    assert read[0].errors[0].exception_class_path == "builtins.ValueError"
    assert calls == ["BatchGetItem"]
    (request,) = asked
    assert request[_backend().store.table_name]["ConsistentRead"] is True


def test_no_ids_no_request(stack: Stack, calls: list[str]) -> None:
    assert _backend().get_results([]) == []
    assert calls == []


def test_unfinished_results_read_as_they_stand(stack: Stack) -> None:
    results = _backend().enqueue_many([(tasks.add, [i, i], {}) for i in range(5)])

    read = _backend().get_results([r.id for r in results])

    assert [r.status for r in read] == [TaskResultStatus.READY] * 5
    assert [r.args for r in read] == [[i, i] for i in range(5)]


def test_a_hundred_ids_a_request_and_repeats_read_once(stack: Stack, calls: list[str]) -> None:
    results = _finished(150)
    ids = [r.id for r in results] + [results[0].id]
    calls.clear()

    read = _backend().get_results(ids)

    assert [r.return_value for r in read] == [*range(150), 0]
    assert calls == ["BatchGetItem", "BatchGetItem"]


def test_missing_ids_are_named_once_and_nothing_is_returned(stack: Stack) -> None:
    known = tasks.add.enqueue(1, 2)

    with pytest.raises(TaskResultDoesNotExist, match=r"^2 of 3 results do not exist: nope, gone$"):
        _backend().get_results(["nope", known.id, "gone", "nope"])


def test_an_id_that_is_not_a_string_is_refused_before_any_request(
    stack: Stack, calls: list[str]
) -> None:
    with pytest.raises(TypeError, match="Result ids must be strings, not 7"):
        _backend().get_results(["abc", 7])
    with pytest.raises(TypeError, match="an iterable of result ids, not one id"):
        _backend().get_results("abc")
    assert calls == []


def test_keys_left_unread_are_asked_for_again_until_read(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    results = _finished(4)
    table = _backend().store.table_name
    throttled = [True, True]  # The first two calls read nothing: the table is throttled.

    def throttle(parsed: dict[str, Any], asked: dict[str, Any]) -> None:
        if throttled and throttled.pop():
            parsed["UnprocessedKeys"] = asked
            parsed["Responses"] = {table: []}

    calls.clear()
    with _after_batch_get(throttle):
        read = _backend().get_results([r.id for r in results])

    assert [r.return_value for r in read] == [0, 1, 2, 3]
    assert calls == ["BatchGetItem"] * 3
    assert pauses == [1, 2]


def test_a_partly_served_read_pauses_before_asking_for_the_rest(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    results = _finished(4)
    table = _backend().store.table_name
    served: list[bool] = []  # Only the first call is cut short.

    def half(parsed: dict[str, Any], asked: dict[str, Any]) -> None:
        if not served:
            served.append(True)
            kept = {r.id for r in results[:2]}
            parsed["Responses"] = {
                table: [i for i in parsed["Responses"][table] if i["id"]["S"] in kept]
            }
            rest = [k for k in asked[table]["Keys"] if k["id"]["S"] not in kept]
            parsed["UnprocessedKeys"] = {table: {"Keys": rest, "ConsistentRead": True}}

    calls.clear()
    with _after_batch_get(half):
        read = _backend().get_results([r.id for r in results])

    assert [r.return_value for r in read] == [0, 1, 2, 3]
    assert calls == ["BatchGetItem"] * 2
    assert pauses == [1]


def test_keys_unread_past_the_bound_are_read_one_by_one(
    stack: Stack, calls: list[str], pauses: list[int]
) -> None:
    results = _finished(3)
    table = _backend().store.table_name

    def never_the_last(parsed: dict[str, Any], asked: dict[str, Any]) -> None:
        keys = asked[table]["Keys"]
        last = keys[-1]["id"]["S"]
        parsed["Responses"] = {
            table: [i for i in parsed["Responses"][table] if i["id"]["S"] != last]
        }
        parsed["UnprocessedKeys"] = {table: {"Keys": [keys[-1]], "ConsistentRead": True}}

    calls.clear()
    with _after_batch_get(never_the_last):
        read = _backend().get_results([r.id for r in results])

    assert [r.return_value for r in read] == [0, 1, 2]
    assert calls == ["BatchGetItem"] * 6 + ["GetItem"]
    assert pauses == [1, 2, 3, 4, 5]


def test_the_async_twin_reads_the_same(stack: Stack) -> None:
    results = [tasks.add.enqueue(2, 3), tasks.add.enqueue(4, 5)]
    drain()

    read = async_to_sync(_backend().aget_results)([r.id for r in results])

    assert [r.return_value for r in read] == [5, 9]
