"""Why a photo's last captioning attempt failed, as a field (it was told only by the start of its message).
Existing messages are read once here, by the beginnings the worker wrote them with."""

from django.db import migrations, models

# The beginnings of the messages the worker wrote before this migration, and the kind each one says.
MESSAGE_STARTS = [
    ("No captioning model is active.", "no_model"),
    ("The checkpoint of model", "model_unusable"),
    ("The model ", "model_unusable"),
    ("Invalid decoding settings", "bad_settings"),
    ("The stored photo cannot be read", "unreadable_file"),
    ("The worker stopped", "abandoned"),
]


def kinds_from_messages(apps, schema_editor) -> None:
    photo_model = apps.get_model("captioning", "Photo")
    failed = photo_model.objects.exclude(error_message="")
    for start, kind in MESSAGE_STARTS:
        failed.filter(failure_kind="", error_message__startswith=start).update(failure_kind=kind)
    failed.filter(failure_kind="").update(failure_kind="engine_error")


class Migration(migrations.Migration):
    dependencies = [("captioning", "0005_photo_one_copy_per_owner_and_gallery")]

    operations = [
        migrations.AddField(
            model_name="photo",
            name="failure_kind",
            field=models.CharField(
                blank=True,
                choices=[
                    ("no_model", "No model is active"),
                    ("model_unusable", "The model is missing or cannot be used"),
                    ("bad_settings", "Invalid decoding settings"),
                    ("unreadable_file", "The stored file cannot be read"),
                    ("engine_error", "The engine failed"),
                    ("abandoned", "The worker stopped too often"),
                ],
                max_length=20,
            ),
        ),
        migrations.RunPython(kinds_from_messages, migrations.RunPython.noop),
    ]
