"""Promise 5: no pickle anywhere, and no secret ever reaches a log line.

The package never imports pickle or marshal (task data is JSON, messages are signed JSON),
and with Powertools JSON logging, as a Lambda container gets it, no log line carries
SECRET_KEY, a message signature, or the AWS secret key or session token, whatever
happens: successes, failures, duplicates, forgeries, dead letters.
"""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.logging.constants import LOGGER_ATTRIBUTE_PRECONFIGURED
from django.conf import settings
from django.tasks import TaskResult, TaskResultStatus

from lambda_handler import dlq
from sqs_tasks.testing import Stack
from sqs_tasks.worker.boot import configure_logging
from tests import tasks as suite_tasks
from tests.faults import tasks
from tests.faults.support import (
    backend,
    body_of,
    deliver,
    dlq_url,
    invoke,
    receive_all,
    send,
)

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("sqs_tasks", "lambda_handler")
# Modules that turn bytes into live objects: never on a path that reads a message or item.
UNSAFE = {"pickle", "_pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}


def _imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None))
            in {"__import__", "import_module"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.lineno, str(node.args[0].value)


def test_the_package_never_imports_pickle_or_marshal() -> None:
    """Every module of sqs_tasks/ and lambda_handler/: 0 imports of pickle-like modules."""
    sources = sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))
    found = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sources
        for line, name in _imports(ast.parse(path.read_text(), str(path)))
        if name.split(".")[0] in UNSAFE
    ]
    # Belt and braces for imports ast cannot see (exec, strings built at run time).
    mentions = [
        f"{path.relative_to(REPO)}:{n}: {text.strip()}"
        for path in sources
        for n, text in enumerate(path.read_text().splitlines(), 1)
        if "import" in text and any(name in text for name in ("pickle", "marshal"))
    ]

    assert len(sources) >= 10, sources
    assert found == []
    assert mentions == []


def _forget_powertools_logging() -> None:
    """Powertools configures its service logger once per process and afterwards hands out
    bare handlers; forget that configuration so configure_logging() starts afresh."""
    for known in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(known, logging.Logger) and getattr(
            known, LOGGER_ATTRIBUTE_PRECONFIGURED, False
        ):
            known.handlers.clear()
            delattr(known, LOGGER_ATTRIBUTE_PRECONFIGURED)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Powertools JSON logging as a Lambda container gets it, our loggers at DEBUG."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    ours = [logging.getLogger(name) for name in ("sqs_tasks", "lambda_handler", "tests")]
    levels = [logger.level for logger in ours]
    stream = io.StringIO()
    _forget_powertools_logging()
    configure_logging(stream)
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    yield stream
    for logger, level in zip(ours, levels, strict=True):
        logger.setLevel(level)
    root.handlers, root.level = saved[0], saved[1]
    _forget_powertools_logging()


def test_logs_never_carry_secrets(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, json_logs: io.StringIO
) -> None:
    """8 tasks (succeeding, failing, logging, abandoned), 1 duplicate, 2 forgeries, 2 dead
    letters: 0 log lines carry SECRET_KEY, any of the 8 signatures, or the AWS secrets."""
    aws_secret = "faults-aws-secret-key-0f9e8d7c6b5a"
    aws_token = "faults-aws-session-token-1a2b3c4d5e6f"
    # Set before the backend makes its clients, which read the environment then.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)
    monkeypatch.setenv("AWS_SESSION_TOKEN", aws_token)
    results: list[TaskResult[..., Any]] = [
        *(tasks.tally.enqueue(n) for n in range(3)),
        tasks.report_attempt.enqueue(),
        tasks.hang_worker.enqueue(hang_attempts=0),
        suite_tasks.chatty.enqueue("hello"),
        tasks.fail_on_purpose.enqueue("boom"),
    ]
    abandoned = tasks.tally.enqueue(7)
    signatures = {r.id: json.loads(body_of(r))["sig"] for r in [*results, abandoned]}
    genuine = json.loads(body_of(results[0]))
    send(body_of(results[0]))  # a duplicate
    send(json.dumps({**genuine, "task": "os.system"}))  # tampered, genuine signature
    send(json.dumps({**genuine, "sig": genuine["sig"][::-1]}))  # forged signature

    batch = receive_all()
    (lost,) = [m for m in batch if json.loads(m["Body"])["id"] == abandoned.id]
    now = datetime.now(UTC)  # the worker that received it died mid-task, long ago:
    backend().store.claim(
        abandoned.id, "died", now - timedelta(hours=1), now - timedelta(minutes=1)
    )
    deliver([m for m in batch if m is not lost])
    tampered_dead = {**lost, "MessageId": "tampered", "Body": json.dumps({**genuine, "v": 9})}
    # The tampered letter cannot be verified: kept in the DLQ, its reason logged.
    assert invoke([lost, tampered_dead], dlq_url(), entry=dlq.handler) == {"tampered"}
    for result in [*results, abandoned]:
        result.refresh()
    logs = json_logs.getvalue()

    assert [r.status for r in results] == [TaskResultStatus.SUCCESSFUL] * 6 + [
        TaskResultStatus.FAILED
    ]
    assert abandoned.errors[0].exception_class_path == "sqs_tasks.exceptions.WorkerLost"
    lines = [json.loads(line) for line in logs.splitlines()]
    said = " | ".join(line["message"] for line in lines)
    assert "saying hello" in said
    assert "duplicate delivery dropped" in said
    assert "cannot be verified" in said
    assert "message dead-lettered" in said
    secrets = {"SECRET_KEY": settings.SECRET_KEY, "AWS secret": aws_secret, "AWS token": aws_token}
    secrets |= {f"signature of {rid}": sig for rid, sig in signatures.items()}
    leaked = sorted(name for name, secret in secrets.items() if secret in logs)
    assert leaked == [], f"{len(leaked)} of {len(secrets)} secrets in {len(lines)} log lines"
