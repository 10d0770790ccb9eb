"""The unmanaged Result model: permissions for the admin's results pages, no table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = ()
    operations = (
        migrations.CreateModel(
            name="Result",
            fields=[("id", models.CharField(max_length=1024, primary_key=True, serialize=False))],
            options={
                "verbose_name": "task result",
                "db_table": "sqs_tasks_result",
                "managed": False,
                "default_permissions": ("view",),
                "permissions": (
                    ("requeue_result", "Can retry task results and redrive dead letters"),
                ),
            },
        ),
    )
