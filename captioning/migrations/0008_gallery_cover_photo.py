"""A gallery's cover photo, chosen by its owner (none: the card shows the first photo uploaded)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("captioning", "0007_caption_familiarity")]

    operations = [
        migrations.AddField(
            model_name="gallery",
            name="cover_photo",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="captioning.photo",
            ),
        ),
    ]
