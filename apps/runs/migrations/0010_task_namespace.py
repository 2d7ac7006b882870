"""Task.namespace: each step row carries its run's namespace, so that the executions
list reads a namespace's steps through the task table's own indexes (see Task).

Added nullable, filled from the runs in one UPDATE, then made NOT NULL."""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models


def copy_namespaces(apps: Any, schema_editor: Any) -> None:
    fill_task_namespaces(apps, schema_editor.connection)


def fill_task_namespaces(apps: Any, connection: Any) -> None:
    """Set every task's namespace to its run's, in one UPDATE (a cursor of its own: DDL
    rules forbid the schema editor's inside RunPython's transaction on MySQL)."""
    Task = apps.get_model("runs", "Task")
    Run = apps.get_model("runs", "Run")
    q = connection.ops.quote_name
    task, run = q(Task._meta.db_table), q(Run._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {task} SET {q('namespace_id')} = "
            f"(SELECT {run}.{q('namespace_id')} FROM {run} WHERE {run}.{q('id')} = {task}.{q('run_id')})"
        )


def field(*, null: bool) -> models.ForeignKey:  # type: ignore[type-arg]
    return models.ForeignKey(
        db_constraint=False,
        db_index=False,
        editable=False,
        null=null,
        on_delete=django.db.models.deletion.DO_NOTHING,
        related_name="+",
        to="core.namespace",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0003_process_heartbeat"),
        ("runs", "0009_experiment_page_index"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["namespace", "pipeline_name"], name="run_ns_pipeline"),
        ),
        migrations.AddField(model_name="task", name="namespace", field=field(null=True)),
        migrations.RunPython(copy_namespaces, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(model_name="task", name="namespace", field=field(null=False)),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["namespace", "created_at", "id", "kind"], name="task_ns_created"),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["namespace", "kind", "component_name"], name="task_ns_kind_component"),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(
                fields=["namespace", "state", "created_at", "id", "kind"], name="task_ns_state_created"
            ),
        ),
        migrations.AddIndex(
            model_name="task",
            index=models.Index(fields=["namespace", "name", "id", "kind"], name="task_ns_name"),
        ),
    ]
