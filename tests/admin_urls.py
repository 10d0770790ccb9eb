"""URLs for the admin tests: the Django admin, where sqs_tasks registers its results pages."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
