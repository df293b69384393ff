from django.db import migrations, models


def unlogged_on_postgresql(apps, schema_editor) -> None:
    """Counting a request then writes no WAL, so its commit waits for no disk (a budget lost in a crash is only
    a budget refilled)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE captioning_requestbudget SET UNLOGGED")


class Migration(migrations.Migration):
    dependencies = [
        ("captioning", "0010_photo_newest_first_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="RequestBudget",
            fields=[
                ("key", models.CharField(max_length=200, primary_key=True, serialize=False)),
                ("spent_until", models.FloatField(help_text="Seconds since the epoch")),
            ],
        ),
        migrations.RunPython(unlogged_on_postgresql, migrations.RunPython.noop, elidable=True),
    ]
