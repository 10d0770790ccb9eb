"""Task results in the admin: look one up, list failures, see queue depths, retry, redrive.

Nothing here reads a database table: results come from DynamoDB (one consistent GetItem, or the
failures index's Query per shard, never a Scan) and depths from SQS. Reading needs the admin's
staff login and ``sqs_tasks.view_result``; retrying and redriving need
``sqs_tasks.requeue_result`` (superusers have both).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.http import urlencode

from ..aws.store import FAILED, SUCCESSFUL, check_id
from ..models import Result
from ..ops.base import OperationError, plain, sqs_backend
from ..ops.depths import queue_depth
from ..ops.reports import last_error_line, result_rows
from ..ops.requeue import redrive, retry

# Django permissions (the unmanaged Result model's): to read, and to retry and redrive.
VIEW_PERMISSION = "sqs_tasks.view_result"
REQUEUE_PERMISSION = "sqs_tasks.requeue_result"
# Failures listed per queue on the overview: the newest, from the failures index.
FAILURES_SHOWN = 20
# A last error line longer than this is cut in the failures table (the result page has it all).
ERROR_WIDTH = 120
TEMPLATES = "admin/sqs_tasks/result/"
# What an unreachable or refusing AWS raises; the page says so instead of failing.
AWS_ERRORS = (ClientError, BotoCoreError, OperationError)


def _cut(text: str, width: int = ERROR_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _pretty(value: str) -> str:
    """A stored JSON string indented for reading; anything else as it is."""
    try:
        return json.dumps(json.loads(value), indent=2, ensure_ascii=False)
    except ValueError:
        return value


def _user(request: HttpRequest) -> PermissionsMixin | AnonymousUser:
    return cast("PermissionsMixin | AnonymousUser", request.user)


def _fields(result: dict[str, Any]) -> list[tuple[str, str]]:
    """A result's facts as (label, text), in the order sqs_tasks_result prints them."""
    return result_rows(result, arguments=False)


if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, PermissionsMixin

    ModelAdmin = admin.ModelAdmin[Result]
else:
    ModelAdmin = admin.ModelAdmin  # generic for type checkers only


class ResultAdmin(ModelAdmin):
    """Results pages under the admin's URL for the Result model, with the admin's look."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Result | None = None) -> bool:
        return _user(request).has_perm(VIEW_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: Result | None = None) -> bool:
        return _user(request).has_perm(REQUEUE_PERMISSION)

    def has_delete_permission(self, request: HttpRequest, obj: Result | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", wrap(self.overview_view), name=f"{name}_changelist"),
            path(
                "queues/<str:queue_name>/redrive/",
                wrap(self.redrive_view),
                name=f"{name}_redrive",
            ),
            path("<str:result_id>/", wrap(self.result_view), name=f"{name}_change"),
            path("<str:result_id>/retry/", wrap(self.retry_view), name=f"{name}_retry"),
        ]

    # ------------------------------------------------------------------ helpers

    def _url(self, view: str, *args: str, backend: str = "default") -> str:
        name = f"admin:{self.opts.app_label}_{self.opts.model_name}_{view}"
        url = reverse(name, args=args, current_app=self.admin_site.name)
        return url if backend == "default" else f"{url}?{urlencode({'backend': backend})}"

    def _backend(self, request: HttpRequest) -> Any:
        """The SQSBackend the request names (?backend= or the form's; default: default)."""
        alias = request.POST.get("backend") or request.GET.get("backend") or "default"
        try:
            return sqs_backend(alias)
        except OperationError as e:
            raise Http404(str(e)) from e

    def _item(self, backend: Any, result_id: str) -> dict[str, Any]:
        """The result as Python values, or a 404 page naming what was not found."""
        item = backend.store.get(result_id) if check_id(result_id) else None
        if item is None:
            raise Http404(
                f"No result {result_id!r} in table {backend.store.table_name!r} "
                f"(backend {backend.alias!r})."
            )
        return plain(item)

    def _require(self, request: HttpRequest, allowed: bool) -> None:
        if not allowed:
            raise PermissionDenied

    def _context(self, request: HttpRequest, backend: Any, title: str) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "backend": backend.alias,
            "overview_url": self._url("changelist", backend=backend.alias),
            "can_requeue": self.has_change_permission(request),
        }

    # ------------------------------------------------------------------ views

    def overview_view(self, request: HttpRequest) -> HttpResponse:
        """Look up a result by id; each queue's depths and newest failures."""
        self._require(request, self.has_view_permission(request))
        backend = self._backend(request)
        wanted = request.GET.get("id", "").strip()
        if wanted:
            try:
                return HttpResponseRedirect(self._url("change", wanted, backend=backend.alias))
            except NoReverseMatch as e:  # a slash: no id the backend makes has one
                raise Http404(f"No result {wanted!r}: result ids have no slashes.") from e
        queues = []
        for queue_name in sorted(backend.queues):
            entry: dict[str, Any] = {"name": queue_name, "failures": []}
            # Apart: a web role allowed the table but not GetQueueAttributes still lists failures.
            try:
                entry["depth"] = queue_depth(backend, queue_name)
            except AWS_ERRORS as e:
                entry["depth_error"] = str(e)
            try:
                for item in backend.store.failures(queue_name, limit=FAILURES_SHOWN):
                    failure = plain(item)
                    failure["url"] = self._url("change", failure["id"], backend=backend.alias)
                    failure["last_error"] = _cut(last_error_line(item))
                    entry["failures"].append(failure)
            except AWS_ERRORS as e:
                entry["failures_error"] = str(e)
            entry["redrive_url"] = self._url("redrive", queue_name, backend=backend.alias)
            queues.append(entry)
        context = {
            **self._context(request, backend, "Task results"),
            "queues": queues,
            "failures_shown": FAILURES_SHOWN,
        }
        return TemplateResponse(request, TEMPLATES + "overview.html", context)

    def result_view(self, request: HttpRequest, result_id: str) -> HttpResponse:
        """One result in full: status, timings, attempts, workers, args, return value, errors."""
        self._require(request, self.has_view_permission(request))
        backend = self._backend(request)
        result = self._item(backend, result_id)
        status = result["status"]
        context = {
            **self._context(request, backend, f"Task result {result_id}"),
            "result": result,
            "fields": _fields(result),
            "args": _pretty(result["args"]),
            "kwargs": _pretty(result["kwargs"]),
            "return_value": _pretty(result["return_value"])
            if status == SUCCESSFUL and "return_value" in result
            else None,
            "errors": result.get("errors", []),
            "retry_url": self._url("retry", result_id, backend=backend.alias)
            if status == FAILED
            else None,
        }
        return TemplateResponse(request, TEMPLATES + "result.html", context)

    def retry_view(self, request: HttpRequest, result_id: str) -> HttpResponse:
        """GET: ask to confirm; POST: enqueue the failed result's task again as a new result."""
        self._require(request, self.has_change_permission(request))
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        backend = self._backend(request)
        result = self._item(backend, result_id)
        result_url = self._url("change", result_id, backend=backend.alias)
        if request.method == "POST":
            try:
                _, retried = retry(backend, result_id)
            except OperationError as e:
                self.message_user(request, str(e), messages.ERROR)
                return HttpResponseRedirect(result_url)
            obj = Result(id=result_id)
            self.log_change(request, obj, f"Retried as {retried.id}.")
            self.message_user(
                request,
                f"Enqueued {retried.id}: a retry of {result_id} ({retried.task.module_path} "
                f"on queue {retried.task.queue_name!r}, priority {retried.task.priority}).",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(self._url("change", retried.id, backend=backend.alias))
        if result["status"] != FAILED:  # nothing to confirm: say so where the result is shown
            self.message_user(
                request,
                f"Result {result_id} is {result['status']}, not FAILED: only a failed result "
                "can be retried.",
                messages.ERROR,
            )
            return HttpResponseRedirect(result_url)
        context = {
            **self._context(request, backend, "Retry this failed result?"),
            "result": result,
            "result_url": result_url,
            "action": "retry",
        }
        return TemplateResponse(request, TEMPLATES + "confirm.html", context)

    def redrive_view(self, request: HttpRequest, queue_name: str) -> HttpResponse:
        """GET: ask to confirm; POST: move the queue's dead letters back onto it."""
        self._require(request, self.has_change_permission(request))
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        backend = self._backend(request)
        overview = self._url("changelist", backend=backend.alias)
        if queue_name not in backend.queues:
            raise Http404(
                f"Unknown queue {queue_name!r}: backend {backend.alias!r} has "
                f"{', '.join(sorted(backend.queues))}."
            )
        if request.method == "POST":
            try:
                done = redrive(backend, queue_name)
            except AWS_ERRORS as e:
                self.message_user(request, f"Redrive of {queue_name!r} failed: {e}", messages.ERROR)
                return HttpResponseRedirect(overview)
            noun = "message" if done.moved == 1 else "messages"
            text = f"Moved {done.moved} {noun} from {done.dead_letter_queue} to {done.queue}"
            if done.failed:
                self.message_user(
                    request,
                    f"{text}; {done.failed} could not be sent: see the log.",
                    messages.ERROR,
                )
            else:
                self.message_user(request, f"{text}.", messages.SUCCESS)
            return HttpResponseRedirect(overview)
        try:
            depth = queue_depth(backend, queue_name)
        except AWS_ERRORS as e:
            self.message_user(request, str(e), messages.ERROR)
            return HttpResponseRedirect(overview)
        if depth.dead_letter_queue is None:
            self.message_user(
                request,
                f"Queue {queue_name!r} has no RedrivePolicy, so no dead-letter queue to redrive.",
                messages.ERROR,
            )
            return HttpResponseRedirect(overview)
        context = {
            **self._context(request, backend, f"Redrive the dead letters of {queue_name!r}?"),
            "depth": depth,
            "action": "redrive",
        }
        return TemplateResponse(request, TEMPLATES + "confirm.html", context)
