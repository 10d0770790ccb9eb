"""The admin's handle on task results: a model with no table, for URLs and permissions only.

Results live in DynamoDB; this unmanaged model exists so the admin lists "Task results" on its
index and Django's permission model has rows to grant: ``sqs_tasks.view_result`` (read results,
failures and queue depths) and ``sqs_tasks.requeue_result`` (retry a failed result, redrive a
dead-letter queue). ``migrate`` creates those permissions and no table.
"""

from __future__ import annotations

from django.db import models


class Result(models.Model):
    """A task result as the admin names it; never saved or queried (managed = False)."""

    # An explicit key: results are named by their string ids, and no DEFAULT_AUTO_FIELD warning.
    id = models.CharField(primary_key=True, max_length=1024)

    class Meta:
        managed = False
        # Named, so defining the model never asks the database backend for its name limit:
        # that would import the backend (and sqlparse) on every Lambda cold start.
        db_table = "sqs_tasks_result"
        verbose_name = "task result"
        default_permissions = ("view",)
        permissions = (("requeue_result", "Can retry task results and redrive dead letters"),)

    def __str__(self) -> str:
        return self.id
