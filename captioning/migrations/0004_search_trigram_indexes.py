"""On PostgreSQL, trigram indexes let caption search find words inside captions and translations without
reading every row (Django's icontains is `UPPER(text) LIKE UPPER('%word%')`). They need the pg_trgm
extension, part of PostgreSQL's contrib (trusted since PostgreSQL 13: a database owner may create it); where it
cannot be created, search still works by scanning, and the migration says so. Nothing to do on SQLite."""

import logging

from django.db import migrations, transaction

logger = logging.getLogger(__name__)

INDEXES = {
    "captioning_caption_text_trgm": "captioning_caption",
    "captioning_translation_text_trgm": "captioning_translation",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as error:
        logger.warning("pg_trgm is not available (%s); caption search will scan captions instead", error)
        return
    for name, table in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ((UPPER(text::text)) gin_trgm_ops)"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("captioning", "0003_caption_review_and_search")]

    operations = [migrations.RunPython(create_indexes, drop_indexes)]
