from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("captioning", "0006_photo_failure_kind"),
    ]

    operations = [
        migrations.AddField(
            model_name="caption",
            name="familiarity",
            field=models.FloatField(
                blank=True,
                help_text="How close the photo is to the model's training images (mean cosine to the nearest ones in "
                "its reference sample, 0 to 1); null when the model has no reference sample or a person wrote the "
                "caption",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="caption",
            name="confident",
            field=models.BooleanField(
                default=True,
                help_text="False when the photo is unlike anything the model was trained on: the caption is a "
                "guess, never alt text, first in the review queue and ranked below confident matches in search",
            ),
        ),
        migrations.AddField(
            model_name="modelversion",
            name="familiarity_reference",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
