"""Galleries become albums: a photo belongs to its owner's library and galleries hold it (GalleryPhoto), several
at once. Every photo stays in the gallery it was in (one GalleryPhoto each, added by its owner when it was
uploaded). Photos of one owner with the same bytes in different galleries (allowed since 0005) stay separate
photos, each with its captions: merging them would have to choose between their captions and histories.

0005's one copy of a file per owner and gallery becomes one photo at most once per gallery; an upload of bytes
its owner already has (and may see) adds that photo instead of storing a copy (services.photos.photo_upload).
On PostgreSQL with pgvector, the vector table loses its gallery column: search filters by the photos visible.

Migrating back keeps each photo in the first gallery it was added to; it refuses while a photo is in none."""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

VECTOR_TABLE = "captioning_photo_clip_vector"

SYNC_WITHOUT_GALLERY = f"""
CREATE OR REPLACE FUNCTION captioning_photo_clip_vector_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.embedding IS NULL OR NEW.embedding_model_id IS NULL THEN
        DELETE FROM {VECTOR_TABLE} WHERE photo_id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    ELSIF TG_OP = 'INSERT'
          OR NEW.embedding IS DISTINCT FROM OLD.embedding
          OR NEW.embedding_model_id IS DISTINCT FROM OLD.embedding_model_id THEN
        INSERT INTO {VECTOR_TABLE} (photo_id, model_version_id, dimensions, embedding)
        VALUES (NEW.id, NEW.embedding_model_id, length(NEW.embedding) / 4,
                captioning_float32le_to_vector(NEW.embedding))
        ON CONFLICT (photo_id) DO UPDATE SET model_version_id = EXCLUDED.model_version_id,
            dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding;
    END IF;
    RETURN NULL;
END
$$;
"""


def _has_vector_table(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [VECTOR_TABLE])
        return cursor.fetchone()[0]


def place_every_photo_in_its_gallery(apps, schema_editor):
    Photo = apps.get_model("captioning", "Photo")
    GalleryPhoto = apps.get_model("captioning", "GalleryPhoto")
    rows = Photo.objects.values_list("pk", "gallery_id", "owner_id").order_by("pk")
    batch = []
    for photo_id, gallery_id, owner_id in rows.iterator(chunk_size=2000):
        batch.append(GalleryPhoto(photo_id=photo_id, gallery_id=gallery_id, added_by_id=owner_id))
        if len(batch) == 2000:
            GalleryPhoto.objects.bulk_create(batch)
            batch = []
    GalleryPhoto.objects.bulk_create(batch)
    # auto_now_add wrote the time of this migration: each photo was added when it was uploaded.
    uploaded_at = Photo.objects.filter(pk=OuterRef("photo_id")).values("created_at")[:1]
    GalleryPhoto.objects.update(added_at=Subquery(uploaded_at))


def put_every_photo_back_in_one_gallery(apps, schema_editor):
    Photo = apps.get_model("captioning", "Photo")
    GalleryPhoto = apps.get_model("captioning", "GalleryPhoto")
    homeless = Photo.objects.exclude(pk__in=GalleryPhoto.objects.values("photo_id")).count()
    if homeless:
        raise RuntimeError(
            f"{homeless} photos are in no gallery: before migrating back, add each to a gallery or delete it."
        )
    first_gallery = {}
    for photo_id, gallery_id in GalleryPhoto.objects.order_by("-added_at", "-id").values_list("photo_id", "gallery_id"):
        first_gallery[photo_id] = gallery_id
    for photo_id, gallery_id in first_gallery.items():
        Photo.objects.filter(pk=photo_id).update(gallery_id=gallery_id)


def vector_table_without_gallery(apps, schema_editor):
    if not _has_vector_table(schema_editor):
        return
    schema_editor.execute(SYNC_WITHOUT_GALLERY)
    schema_editor.execute(f"DROP INDEX IF EXISTS {VECTOR_TABLE}_gallery")
    schema_editor.execute(f"ALTER TABLE {VECTOR_TABLE} DROP COLUMN gallery_id")
    schema_editor.execute(f"CREATE INDEX {VECTOR_TABLE}_model ON {VECTOR_TABLE} (model_version_id, dimensions)")


def vector_table_with_gallery(apps, schema_editor):
    if not _has_vector_table(schema_editor):
        return
    before = importlib.import_module("captioning.migrations.0009_search_pgvector_if_available")
    schema_editor.execute(f"DROP INDEX IF EXISTS {VECTOR_TABLE}_model")
    schema_editor.execute(f"ALTER TABLE {VECTOR_TABLE} ADD COLUMN gallery_id bigint")
    schema_editor.execute(
        f"UPDATE {VECTOR_TABLE} AS vectors SET gallery_id = photos.gallery_id FROM captioning_photo AS photos "
        "WHERE photos.id = vectors.photo_id"
    )
    schema_editor.execute(f"ALTER TABLE {VECTOR_TABLE} ALTER COLUMN gallery_id SET NOT NULL")
    schema_editor.execute(
        f"CREATE INDEX {VECTOR_TABLE}_gallery ON {VECTOR_TABLE} (gallery_id, model_version_id, dimensions)"
    )
    schema_editor.execute(before.SYNC.split("CREATE TRIGGER")[0])


class Migration(migrations.Migration):
    dependencies = [
        ("captioning", "0011_request_budget"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="photo",
            name="gallery",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="captioning.gallery"
            ),
        ),
        migrations.CreateModel(
            name="GalleryPhoto",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("added_at", models.DateTimeField(auto_now_add=True)),
                (
                    "added_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "gallery",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="placements", to="captioning.gallery"
                    ),
                ),
                (
                    "photo",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="placements", to="captioning.photo"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("gallery", "photo"), name="a_photo_once_per_gallery")]
            },
        ),
        migrations.RunPython(place_every_photo_in_its_gallery, put_every_photo_back_in_one_gallery),
        migrations.RunPython(vector_table_without_gallery, vector_table_with_gallery),
        migrations.RemoveConstraint(model_name="photo", name="one_copy_of_a_file_per_owner_and_gallery"),
        migrations.RemoveIndex(model_name="photo", name="captioning__gallery_6be004_idx"),
        migrations.RemoveField(model_name="photo", name="gallery"),
        migrations.AddField(
            model_name="gallery",
            name="photos",
            field=models.ManyToManyField(
                blank=True, related_name="galleries", through="captioning.GalleryPhoto", to="captioning.photo"
            ),
        ),
        migrations.AddIndex(
            model_name="photo", index=models.Index(fields=["owner", "sha256"], name="captioning__owner_i_536ad1_idx")
        ),
    ]
