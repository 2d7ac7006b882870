from django.apps.registry import Apps
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def create_default_namespace(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Namespace = apps.get_model("core", "Namespace")
    Namespace.objects.get_or_create(name="default", defaults={"description": "The shared default namespace."})


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]
    operations = [migrations.RunPython(create_default_namespace, migrations.RunPython.noop)]
