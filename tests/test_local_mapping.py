"""The emulated Lambda event source mapping of `sqs-tasks local` (sqs_tasks.local.mapping).

Against moto server, with handlers of the tests' own: which messages are deleted, which come
back, what an invocation gets, and the redrive to the dead-letter queue. The tests wait for
the mapping's threads with Event.wait (a safety timeout, never a timed assertion).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from sqs_tasks.local.mapping import EventSourceMapping
from sqs_tasks.local.mapping_config import (
    FunctionConfig,
    MappingConfig,
    read_mappings,
)
from sqs_tasks.testing import Stack

WAIT = 30  # seconds: only ever reached when something is broken

FUNCTION = FunctionConfig(
    name="fn",
    arn="arn:aws:lambda:us-east-1:123456789012:function:fn",
    handler="tests.handler",
    timeout=60,
    memory_size=256,
)


class Queues:
    """A queue with a dead-letter queue in the moto server, and mappings over it."""

    def __init__(self, endpoint_url: str, max_receive_count: int = 5) -> None:
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
        self.dlq_url = self.sqs.create_queue(QueueName="esm-dlq")["QueueUrl"]
        self.dlq_arn = self.arn(self.dlq_url)
        redrive = {"deadLetterTargetArn": self.dlq_arn, "maxReceiveCount": max_receive_count}
        self.url = self.sqs.create_queue(
            QueueName="esm",
            Attributes={"VisibilityTimeout": "600", "RedrivePolicy": json.dumps(redrive)},
        )["QueueUrl"]
        self.queue_arn = self.arn(self.url)
        self.mappings: list[EventSourceMapping] = []

    def arn(self, url: str) -> str:
        arn: str = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        return arn

    def config(self, **overrides: Any) -> MappingConfig:
        values: dict[str, Any] = {
            "uuid": "mapping",
            "function": FUNCTION,
            "queue_url": self.url,
            "queue_arn": self.queue_arn,
            "region": "us-east-1",
            "batch_size": 10,
            "batching_window": 0,
            "report_batch_item_failures": True,
            "maximum_concurrency": 2,
            "visibility_timeout": 600,
            "max_receive_count": 5,
            "dead_letter_arn": self.dlq_arn,
        }
        return MappingConfig(**{**values, **overrides})

    def send(self, *bodies: str) -> list[str]:
        return [
            self.sqs.send_message(QueueUrl=self.url, MessageBody=b)["MessageId"] for b in bodies
        ]

    def run(
        self,
        handler: Callable[[dict[str, Any], Any], Any],
        settled: int,
        *,
        visibility_timeout: int | None = None,
        **config: Any,
    ) -> list[tuple[str, str]]:
        """Run a mapping until `settled` messages were deleted or failed; (body, outcome)s."""
        outcomes: list[tuple[str, str]] = []
        enough = threading.Event()
        lock = threading.Lock()

        def listener(_: MappingConfig, message: dict[str, Any], outcome: str) -> None:
            with lock:
                outcomes.append((message["Body"], outcome))
                if len(outcomes) >= settled:
                    enough.set()

        mapping = EventSourceMapping(
            self.config(**config),
            handler,
            self.sqs,
            visibility_timeout=visibility_timeout,
            listeners=[listener],
        )
        self.mappings.append(mapping)
        mapping.start()
        assert enough.wait(WAIT), f"only {outcomes} settled"
        mapping.stop()
        mapping.join()
        return outcomes

    def counts(self, url: str) -> tuple[int, int]:
        """(visible, in flight) messages of a queue."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


@pytest.fixture
def queues(stack: Stack) -> Iterator[Queues]:
    assert stack.endpoint_url is not None
    made = Queues(stack.endpoint_url)
    yield made
    for mapping in made.mappings:
        mapping.stop()
        mapping.join()


def failing(*bodies: str) -> Callable[[dict[str, Any], Any], Any]:
    """A handler that reports the records with these bodies in batchItemFailures."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] in bodies
            ]
        }

    return handler


def test_partial_batch_response_deletes_the_rest_and_leaves_failures_in_flight(
    queues: Queues,
) -> None:
    queues.send("a", "b", "c")
    events: list[dict[str, Any]] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        events.append(event)
        return failing("b")(event, context)

    outcomes = queues.run(handler, settled=3)

    assert sorted(outcomes) == [("a", "deleted"), ("b", "failed"), ("c", "deleted")]
    # The failure waits out the queue's visibility timeout, as after a Lambda invocation.
    assert queues.counts(queues.url) == (0, 1)
    (record, *_) = events[0]["Records"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.queue_arn
    assert record["attributes"]["ApproximateReceiveCount"] == "1"


def test_a_raising_handler_fails_the_whole_batch(queues: Queues) -> None:
    queues.send("a", "b")

    def handler(event: dict[str, Any], context: Any) -> Any:
        raise RuntimeError("crashed")

    outcomes = queues.run(handler, settled=2, batching_window=1)

    assert sorted(outcomes) == [("a", "failed"), ("b", "failed")]
    assert queues.counts(queues.url) == (0, 2)


def test_an_unknown_item_identifier_fails_the_whole_batch(queues: Queues) -> None:
    queues.send("a", "b")

    def handler(event: dict[str, Any], context: Any) -> Any:
        return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}

    outcomes = queues.run(handler, settled=2, batching_window=1)

    assert sorted(outcomes) == [("a", "failed"), ("b", "failed")]


def test_without_report_batch_item_failures_a_return_deletes_the_batch(queues: Queues) -> None:
    queues.send("a", "b")

    outcomes = queues.run(
        failing("a"), settled=2, batching_window=1, report_batch_item_failures=False
    )

    assert sorted(outcomes) == [("a", "deleted"), ("b", "deleted")]
    assert queues.counts(queues.url) == (0, 0)


def test_batches_hold_at_most_batch_size_messages(queues: Queues) -> None:
    queues.send(*"abcde")
    sizes: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> Any:
        sizes.append(len(event["Records"]))
        return {"batchItemFailures": []}

    queues.run(handler, settled=5, batch_size=2, maximum_concurrency=1)

    assert sum(sizes) == 5
    assert max(sizes) <= 2


class HeldDeletes:
    """The queues' SQS client, but DeleteMessageBatch waits for release() (or raises)."""

    def __init__(self, sqs: Any, error: Exception | None = None) -> None:
        self.sqs = sqs
        self.error = error
        self.waiting = threading.Event()
        self.released = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)

    def delete_message_batch(self, **kwargs: Any) -> Any:
        self.waiting.set()
        if self.error is not None:
            raise self.error
        assert self.released.wait(WAIT)
        return self.sqs.delete_message_batch(**kwargs)


def test_the_next_batch_runs_while_the_last_one_is_being_deleted(queues: Queues) -> None:
    queues.send("a", "b")
    invoked: list[str] = []
    second = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> Any:
        invoked.extend(r["body"] for r in event["Records"])
        if len(invoked) == 2:
            second.set()
        return {"batchItemFailures": []}

    held = HeldDeletes(queues.sqs)
    settled: list[str] = []
    mapping = EventSourceMapping(
        queues.config(batch_size=1, maximum_concurrency=1),
        handler,
        held,
        listeners=[lambda _, message, outcome: settled.append(outcome)],
    )
    queues.mappings.append(mapping)
    mapping.start()

    assert held.waiting.wait(WAIT)  # the first batch's delete has begun and is held...
    assert second.wait(WAIT)  # ...yet its slot went to the second batch
    assert settled == []
    held.released.set()
    mapping.stop()
    mapping.join()  # waits for both deletes

    assert sorted(invoked) == ["a", "b"] and settled == ["deleted", "deleted"]
    assert mapping.stats.deleted == 2
    assert queues.counts(queues.url) == (0, 0)


def test_a_failed_delete_leaves_the_message_to_come_back(queues: Queues) -> None:
    queues.send("a")
    held = HeldDeletes(queues.sqs, error=RuntimeError("SQS is down"))
    settled: list[str] = []
    mapping = EventSourceMapping(
        queues.config(), failing(), held, listeners=[lambda _, m, o: settled.append(o)]
    )
    queues.mappings.append(mapping)
    mapping.start()

    assert held.waiting.wait(WAIT)
    mapping.stop()
    mapping.join()

    assert mapping.stats.invocations == 1 and mapping.stats.failed_invocations == 0
    assert mapping.stats.deleted == 0 and settled == []
    assert queues.counts(queues.url) == (0, 1)  # in flight: back after its visibility timeout


def test_the_context_counts_down_from_the_function_timeout() -> None:
    context = FUNCTION.context()

    assert 0 < context.get_remaining_time_in_millis() <= FUNCTION.timeout * 1000
    assert context.function_name == "fn"
    assert context.invoked_function_arn == FUNCTION.arn
    assert context.memory_limit_in_mb == 256


def test_moto_redrives_after_max_receive_count_to_the_dead_letter_mapping(
    stack: Stack,
) -> None:
    assert stack.endpoint_url is not None
    queues = Queues(stack.endpoint_url, max_receive_count=2)
    queues.send("poison")

    # Refused twice, with visibility 0 so that it comes straight back.
    outcomes = queues.run(failing("poison"), settled=2, visibility_timeout=0)
    assert outcomes == [("poison", "failed"), ("poison", "failed")]
    # The next receive moves it to the dead-letter queue (as SQS does), whose mapping settles it.
    assert queues.sqs.receive_message(QueueUrl=queues.url).get("Messages", []) == []
    dead = queues.run(
        failing(),
        settled=1,
        queue_url=queues.dlq_url,
        queue_arn=queues.dlq_arn,
        dead_letter_arn=None,
        max_receive_count=None,
    )
    assert dead == [("poison", "deleted")]
    assert queues.counts(queues.url) == (0, 0)
    assert queues.counts(queues.dlq_url) == (0, 0)


def test_read_mappings_takes_the_deployed_configuration(queues: Queues, stack: Stack) -> None:
    assert stack.endpoint_url is not None
    lambda_client = boto3.client("lambda", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    iam = boto3.client("iam", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    function = lambda_client.create_function(
        FunctionName="fn",
        Runtime="python3.13",
        Role=role,
        Handler="tests.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
        Timeout=30,
        MemorySize=256,
    )
    lambda_client.create_event_source_mapping(
        EventSourceArn=queues.queue_arn,
        FunctionName="fn",
        Enabled=False,
        BatchSize=7,
        MaximumBatchingWindowInSeconds=3,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        ScalingConfig={"MaximumConcurrency": 4},
    )

    (config,) = read_mappings(lambda_client, queues.sqs, function)

    assert config.function.timeout == 30
    assert config.function.handler == "tests.handler"
    assert (config.batch_size, config.batching_window, config.maximum_concurrency) == (7, 3, 4)
    assert config.report_batch_item_failures
    assert config.visibility_timeout == 600
    assert (config.max_receive_count, config.dead_letter_arn) == (5, queues.dlq_arn)
    assert config.queue_name == "esm"
