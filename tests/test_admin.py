"""The admin's task results pages: who may see and act, what they show, retry and redrive."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from django.tasks import TaskResultStatus, default_task_backend
from django.test import Client

from sqs_tasks.testing import MAX_RECEIVE_COUNT, Stack, drain
from tests import tasks
from tests.admin_site import admin_site
from tests.conftest import queue_depth

if TYPE_CHECKING:
    from django.contrib.auth.models import User

__all__ = ["admin_site"]

BASE = "/admin/sqs_tasks/result/"


def _client(user: User | None, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


def _failed(message: str = "boom", **using: Any) -> str:
    result = tasks.fail.using(**using).enqueue(message) if using else tasks.fail.enqueue(message)
    drain()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    return result.id


def _csrf_post(client: Client, url: str) -> Any:
    """GET the confirmation page, then POST its form with the token it carries."""
    page = client.get(url)
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert token, "the confirmation form has no CSRF token"
    return client.post(url, {"csrfmiddlewaretoken": token[1], "backend": "default"})


def _messages(response: Any) -> list[str]:
    """The admin's message list on a page, as "level: text"."""
    page = response.content.decode()
    if '<ul class="messagelist">' not in page:
        return []
    shown = page.split('<ul class="messagelist">', 1)[1].split("</ul>", 1)[0]
    return [
        f"{level}: {html.unescape(text)}"
        for level, text in re.findall(r'<li class="(\w+)">(.*?)</li>', shown)
    ]


def test_anonymous_and_non_staff_users_get_the_login_page(
    admin_site: dict[str, User], stack: Stack
) -> None:
    result_id = _failed()
    for user in (None, admin_site["visitor"]):
        for url in (BASE, f"{BASE}{result_id}/", f"{BASE}{result_id}/retry/"):
            response = _client(user).get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/?next="), url
        assert _client(user).post(f"{BASE}{result_id}/retry/").status_code == 302
    assert queue_depth() == 0  # nothing was retried


def test_staff_without_the_permission_are_refused(
    admin_site: dict[str, User], stack: Stack
) -> None:
    result_id = _failed()
    clerk = _client(admin_site["clerk"])
    assert clerk.get(BASE).status_code == 403
    assert clerk.get(f"{BASE}{result_id}/").status_code == 403
    assert "Task results" not in clerk.get("/admin/").content.decode()


def test_the_admin_index_links_the_results_page(admin_site: dict[str, User], stack: Stack) -> None:
    page = _client(admin_site["viewer"]).get("/admin/").content.decode()
    assert f'<a href="{BASE}">Task results</a>' in page
    assert "addlink" not in page  # there is nothing to add


def test_overview_lists_each_queues_failures_and_depths_without_a_scan(
    admin_site: dict[str, User], stack: Stack
) -> None:
    first = _failed("first")
    second = _failed("second")
    mail = _failed("mail server down", queue_name="emails")
    tasks.add.enqueue(1, 2)  # one waiting message
    calls: list[str] = []
    backend: Any = default_task_backend
    backend.client("dynamodb").meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
    )

    response = _client(admin_site["viewer"]).get(BASE)

    assert response.status_code == 200
    page = response.content.decode()
    default, emails = page.split('id="queue-default"')[1].split('id="queue-emails"')
    assert default.index(second) < default.index(first)  # newest first
    assert "ValueError: second" in default and mail not in default
    assert mail in emails and "ValueError: mail server down" in emails
    assert f'href="{BASE}{first}/"' in default
    assert '<td class="depth-visible">1</td>' in default
    assert '<td class="depth-dead-letters">0</td>' in default
    assert "sqs-tasks-default-default-dlq" in default
    assert set(calls) == {"Query"}  # the failures index, shard by shard
    assert "Redrive" not in page  # no dead letters, and a viewer may not act


def test_a_failed_result_in_full(admin_site: dict[str, User], stack: Stack) -> None:
    result_id = _failed("boom")
    backend: Any = default_task_backend
    result = backend.get_result(result_id)
    finished = backend.store.get(result_id)["finished_at"]["S"]

    response = _client(admin_site["viewer"]).get(f"{BASE}{result_id}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert '<td class="field-status">FAILED</td>' in page
    assert '<td class="field-task">tests.tasks.fail</td>' in page
    assert '<td class="field-attempts">1</td>' in page
    assert f'<td class="field-worker-ids">{result.worker_ids[0]}</td>' in page
    assert f'<td class="field-finished">{finished}</td>' in page
    assert "<h2>Errors (1)</h2>" in page
    assert "Traceback (most recent call last):" in page and "ValueError: boom" in page
    assert '<pre class="field-args">[\n  &quot;boom&quot;\n]</pre>' in page
    assert "field-return-value" not in page
    assert "Retry" not in page  # a viewer may not act


def test_a_successful_result_shows_its_return_value(
    admin_site: dict[str, User], stack: Stack
) -> None:
    result = tasks.echo.enqueue(1, key="value")
    drain()

    page = _client(admin_site["viewer"]).get(f"{BASE}{result.id}/").content.decode()

    assert '<td class="field-status">SUCCESSFUL</td>' in page
    assert "&quot;kwargs&quot;: {\n    &quot;key&quot;: &quot;value&quot;" in page
    assert "<h2>Errors (0)</h2>" in page


def test_an_unknown_or_impossible_id_is_a_404_page(
    admin_site: dict[str, User], calls: list[str]
) -> None:
    client = _client(admin_site["admin"])
    for result_id in ("nope", "x" * 3000):
        assert client.get(f"{BASE}{result_id}/").status_code == 404
        assert client.get(f"{BASE}{result_id}/retry/").status_code == 404
    # Past DynamoDB's 2,048-byte key limit nothing is asked: it could only refuse.
    assert calls == ["GetItem"] * 2
    assert client.get(f"{BASE}?backend=other").status_code == 404
    lookup = client.get(BASE, {"id": " nope "})
    assert (lookup.status_code, lookup["Location"]) == (302, f"{BASE}nope/")
    assert client.get(BASE, {"id": "a/b"}).status_code == 404


def test_retry_asks_first_then_enqueues_a_new_result(
    admin_site: dict[str, User], stack: Stack
) -> None:
    result_id = _failed("boom", queue_name="emails", priority=3)
    client = _client(admin_site["operator"], csrf=True)
    page = client.get(f"{BASE}{result_id}/").content.decode()
    assert f'href="{BASE}{result_id}/retry/">Retry' in page

    confirm = client.get(f"{BASE}{result_id}/retry/")
    assert confirm.status_code == 200
    assert "Yes, retry it" in confirm.content.decode()
    assert queue_depth("emails") == 0  # asking changes nothing

    response = _csrf_post(client, f"{BASE}{result_id}/retry/")

    assert response.status_code == 302
    new_id = response["Location"].removeprefix(BASE).removesuffix("/")
    assert new_id != result_id
    retried: Any = default_task_backend.get_result(new_id)
    assert retried.status == TaskResultStatus.READY
    assert (retried.args, retried.task.queue_name, retried.task.priority) == (["boom"], "emails", 3)
    assert queue_depth("emails") == 1
    shown = client.get(response["Location"])
    assert _messages(shown) == [
        f"success: Enqueued {new_id}: a retry of {result_id} (tests.tasks.fail on queue 'emails', "
        "priority 3)."
    ]
    from django.contrib.admin.models import LogEntry

    entry = LogEntry.objects.get(object_id=result_id)
    assert (entry.user, entry.get_change_message()) == (
        admin_site["operator"],
        f"Retried as {new_id}.",
    )


def test_retry_without_a_csrf_token_is_refused(admin_site: dict[str, User], stack: Stack) -> None:
    result_id = _failed()
    client = _client(admin_site["operator"], csrf=True)

    assert client.post(f"{BASE}{result_id}/retry/").status_code == 403
    assert queue_depth() == 0


def test_retry_of_a_result_that_did_not_fail_says_why(
    admin_site: dict[str, User], stack: Stack
) -> None:
    waiting = tasks.add.enqueue(1, 2)
    client = _client(admin_site["admin"])

    refused = (
        f"error: Result {waiting.id} is READY, not FAILED: only a failed result can be retried."
    )
    for method in (client.get, client.post):
        response = method(f"{BASE}{waiting.id}/retry/", follow=True)

        assert response.redirect_chain == [(f"{BASE}{waiting.id}/", 302)]
        assert _messages(response) == [refused]
    assert queue_depth() == 1  # only the original message


def test_viewers_may_not_retry_or_redrive(admin_site: dict[str, User], stack: Stack) -> None:
    result_id = _failed()
    viewer = _client(admin_site["viewer"])
    assert viewer.get(f"{BASE}{result_id}/retry/").status_code == 403
    assert viewer.post(f"{BASE}{result_id}/retry/").status_code == 403
    assert viewer.post(f"{BASE}queues/default/redrive/").status_code == 403
    assert queue_depth() == 0


def _dead_letter_everything(queue: str = "default") -> None:
    """Receive without deleting until SQS moves each message to the DLQ (maxReceiveCount)."""
    backend: Any = default_task_backend
    sqs, url = backend.client("sqs"), backend.queue.url(queue)
    for _ in range(MAX_RECEIVE_COUNT + 1):
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)


def test_redrive_asks_first_then_moves_dead_letters_back(
    admin_site: dict[str, User], stack: Stack
) -> None:
    tasks.add.enqueue(20, 22)
    tasks.add.enqueue(1, 1)
    _dead_letter_everything()
    client = _client(admin_site["operator"], csrf=True)
    overview = client.get(BASE).content.decode()
    assert '<td class="depth-dead-letters">2</td>' in overview
    assert f'href="{BASE}queues/default/redrive/">Redrive' in overview

    confirm = client.get(f"{BASE}queues/default/redrive/").content.decode()
    assert "<strong>2</strong>" in confirm and "sqs-tasks-default-default-dlq" in confirm
    assert client.post(f"{BASE}queues/default/redrive/").status_code == 403  # no CSRF token
    assert queue_depth() == 0

    response = _csrf_post(client, f"{BASE}queues/default/redrive/")

    assert (response.status_code, response["Location"]) == (302, BASE)
    assert _messages(client.get(BASE)) == [
        "success: Moved 2 messages from sqs-tasks-default-default-dlq to sqs-tasks-default-default."
    ]
    assert queue_depth() == 2
    assert drain() == 2


def test_redrive_of_an_unknown_queue_is_a_404(admin_site: dict[str, User], stack: Stack) -> None:
    client = _client(admin_site["admin"])
    assert client.get(f"{BASE}queues/nope/redrive/").status_code == 404
    assert client.post(f"{BASE}queues/nope/redrive/").status_code == 404


def test_migrate_makes_the_permissions_and_no_table_and_checks_pass(
    admin_site: dict[str, User],
) -> None:
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import connection

    call_command("makemigrations", "sqs_tasks", "--check", "--dry-run", verbosity=0)
    call_command("check", tags=["admin", "models"], fail_level="WARNING")  # of ResultAdmin, Result
    assert "sqs_tasks_result" not in connection.introspection.table_names()
    assert sorted(
        Permission.objects.filter(content_type__app_label="sqs_tasks").values_list(
            "codename", "name"
        )
    ) == [
        ("requeue_result", "Can retry task results and redrive dead letters"),
        ("view_result", "Can view task result"),
    ]


def test_a_queue_whose_depths_are_denied_still_lists_its_failures(
    admin_site: dict[str, User], stack: Stack
) -> None:
    result_id = _failed("boom")
    sqs = default_task_backend.client("sqs")  # type: ignore[attr-defined]

    def deny(**_: Any) -> None:
        error = {"Code": "AccessDenied", "Message": "not authorized: sqs:GetQueueAttributes"}
        raise ClientError({"Error": error}, "GetQueueAttributes")

    sqs.meta.events.register("before-call.sqs.GetQueueAttributes", deny)
    try:
        response = _client(admin_site["viewer"]).get(BASE)
    finally:
        sqs.meta.events.unregister("before-call.sqs.GetQueueAttributes", deny)

    assert response.status_code == 200
    default = response.content.decode().split('id="queue-default"')[1]
    assert "Could not read the queue's depths: An error occurred (AccessDenied)" in default
    assert f'href="{BASE}{result_id}/"' in default


def test_the_model_costs_the_worker_no_database_backend() -> None:
    """The Lambda worker loads sqs_tasks.models at django.setup(), with no database."""
    probe = (
        "import django, sys; django.setup(); import sqs_tasks.models; "
        "backend = ('sqlparse', 'django.db.backends.base'); "
        "print(sorted(m for m in sys.modules if m.startswith(backend)))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_redrive_of_a_queue_without_a_dead_letter_queue_says_so(
    admin_site: dict[str, User], stack: Stack
) -> None:
    backend: Any = default_task_backend
    sqs = backend.client("sqs")
    sqs.set_queue_attributes(QueueUrl=backend.queue.url("emails"), Attributes={"RedrivePolicy": ""})
    client = _client(admin_site["admin"])

    overview = client.get(BASE).content.decode().split('id="queue-emails"')[1]
    assert "none (no RedrivePolicy)" in overview
    response = client.get(f"{BASE}queues/emails/redrive/", follow=True)

    assert response.redirect_chain == [(BASE, 302)]
    assert _messages(response) == [
        "error: Queue 'emails' has no RedrivePolicy, so no dead-letter queue to redrive."
    ]
