"""One copy of a file per owner *and gallery* (it was per owner): the same file may go into each gallery its
owner uploads to, and the duplicate an upload finds is always in the gallery it was sent to. Existing rows
satisfy the new constraint already, since the old one was stricter."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("captioning", "0004_search_trigram_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="photo", name="one_copy_of_a_file_per_owner"),
        migrations.AddConstraint(
            model_name="photo",
            constraint=models.UniqueConstraint(
                fields=("owner", "gallery", "sha256"), name="one_copy_of_a_file_per_owner_and_gallery"
            ),
        ),
    ]
