"""The Django admin's task results pages, registered when django.contrib.admin autodiscovers."""

from __future__ import annotations

from django.contrib import admin

from ..models import Result
from .results import ResultAdmin

__all__ = ["ResultAdmin"]

admin.site.register(Result, ResultAdmin)
