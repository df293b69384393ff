"""On PostgreSQL with the pgvector extension, photo embeddings are also kept in a `vector` column with HNSW
indexes, where image search runs (captioning/search/pgvector.py). Nothing to do on SQLite, nor on PostgreSQL
where the extension cannot be created: search keeps the in-memory index there, and this migration says so.

`captioning_photo_clip_vector` is not a Django model: a trigger on the photos keeps it equal to their
`embedding` bytes (little-endian float32) on every insert, update, delete and truncate, whoever writes them.
Each CLIP size below gets a partial HNSW index (cosine); other sizes are searched exactly."""

import logging

from django.db import migrations, transaction

from captioning.search.pgvector import binary_copy

logger = logging.getLogger(__name__)

TABLE = "captioning_photo_clip_vector"
INDEXED_DIMENSIONS = (512, 640, 768, 1024)

# float32 bits -> value (sign, 8 exponent bits, 23 mantissa bits; exponent 0: subnormal), for the trigger's
# one row at a time; bulk fills convert in Python (vector_table_fill below, and in captioning.search.pgvector).
FLOAT32_TO_VECTOR = """
CREATE OR REPLACE FUNCTION captioning_float32le_to_vector(data bytea) RETURNS vector
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    elements real[] := '{}';
    high integer;
    exponent integer;
    mantissa integer;
    value float8;
BEGIN
    FOR item IN 0 .. length(data) / 4 - 1 LOOP
        high := get_byte(data, 4 * item + 3);
        exponent := ((high & 127) << 1) | (get_byte(data, 4 * item + 2) >> 7);
        mantissa := ((get_byte(data, 4 * item + 2) & 127) << 16) | (get_byte(data, 4 * item + 1) << 8)
                    | get_byte(data, 4 * item);
        IF exponent = 0 THEN
            value := mantissa * power(2::float8, -149);
        ELSE
            value := (8388608 + mantissa) * power(2::float8, exponent - 150);
        END IF;
        IF high >= 128 THEN
            value := -value;
        END IF;
        elements := elements || value::real;
    END LOOP;
    RETURN elements::vector;
END
$$
"""

SYNC = f"""
CREATE OR REPLACE FUNCTION captioning_photo_clip_vector_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.embedding IS NULL OR NEW.embedding_model_id IS NULL THEN
        DELETE FROM {TABLE} WHERE photo_id = (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    ELSIF TG_OP = 'INSERT'
          OR NEW.embedding IS DISTINCT FROM OLD.embedding
          OR NEW.embedding_model_id IS DISTINCT FROM OLD.embedding_model_id
          OR NEW.gallery_id IS DISTINCT FROM OLD.gallery_id THEN
        INSERT INTO {TABLE} (photo_id, model_version_id, gallery_id, dimensions, embedding)
        VALUES (NEW.id, NEW.embedding_model_id, NEW.gallery_id, length(NEW.embedding) / 4,
                captioning_float32le_to_vector(NEW.embedding))
        ON CONFLICT (photo_id) DO UPDATE SET model_version_id = EXCLUDED.model_version_id,
            gallery_id = EXCLUDED.gallery_id, dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding;
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION captioning_photo_clip_vector_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {TABLE};
    RETURN NULL;
END
$$;
CREATE TRIGGER captioning_photo_clip_vector_sync AFTER INSERT OR UPDATE OR DELETE ON captioning_photo
    FOR EACH ROW EXECUTE FUNCTION captioning_photo_clip_vector_sync();
CREATE TRIGGER captioning_photo_clip_vector_truncate AFTER TRUNCATE ON captioning_photo
    FOR EACH STATEMENT EXECUTE FUNCTION captioning_photo_clip_vector_truncate();
"""


def vector_table_fill(database, chunk_size: int = 5000) -> None:
    """The table as this migration made it (with each photo's gallery), filled in Python: a frozen copy of
    captioning.search.pgvector.vector_table_fill, which migration 0012 changed with the table."""
    after = 0
    columns = "photo_id, model_version_id, gallery_id, dimensions, embedding"
    with database.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT id, embedding_model_id, gallery_id, embedding FROM captioning_photo "
                "WHERE id > %s AND embedding IS NOT NULL AND embedding_model_id IS NOT NULL ORDER BY id LIMIT %s",
                [after, chunk_size],
            )
            rows = cursor.fetchall()
            if not rows:
                return
            with cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(binary_copy(rows, id_columns=3))
            after = rows[-1][0]


def create_vector_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except Exception as error:
        logger.warning("pgvector is not available (%s); image search keeps its in-memory index", error)
        return
    # No foreign keys: Django's flush truncates the photos without CASCADE, and the triggers follow them.
    # PLAIN storage keeps each vector in its row, where the index build and exact scans read it.
    schema_editor.execute(
        f"""CREATE TABLE {TABLE} (
            photo_id bigint PRIMARY KEY,
            model_version_id bigint NOT NULL,
            gallery_id bigint NOT NULL,
            dimensions integer NOT NULL,
            embedding vector NOT NULL
        )"""
    )
    schema_editor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN embedding SET STORAGE PLAIN")
    schema_editor.execute(f"CREATE INDEX {TABLE}_gallery ON {TABLE} (gallery_id, model_version_id, dimensions)")
    schema_editor.execute(FLOAT32_TO_VECTOR)
    schema_editor.execute(SYNC)
    vector_table_fill(schema_editor.connection)
    for dimensions in INDEXED_DIMENSIONS:
        schema_editor.execute(
            f"CREATE INDEX {TABLE}_hnsw_{dimensions} ON {TABLE} "
            f"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) WHERE dimensions = {dimensions}"
        )


def drop_vector_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS captioning_photo_clip_vector_sync ON captioning_photo")
    schema_editor.execute("DROP TRIGGER IF EXISTS captioning_photo_clip_vector_truncate ON captioning_photo")
    schema_editor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    schema_editor.execute("DROP FUNCTION IF EXISTS captioning_photo_clip_vector_sync()")
    schema_editor.execute("DROP FUNCTION IF EXISTS captioning_photo_clip_vector_truncate()")
    schema_editor.execute("DROP FUNCTION IF EXISTS captioning_float32le_to_vector(bytea)")


class Migration(migrations.Migration):
    dependencies = [("captioning", "0008_gallery_cover_photo")]

    operations = [migrations.RunPython(create_vector_index, drop_vector_index)]
