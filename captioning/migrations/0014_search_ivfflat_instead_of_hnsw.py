"""Image search's index becomes IVFFlat instead of HNSW, where pgvector is installed (the vector table of
migration 0009 exists); nothing to do elsewhere (SQLite, or PostgreSQL without the extension, such as Debian's,
where search keeps its in-memory index).

pgvector 0.6 filters an index's candidates after the scan. HNSW hands over at most hnsw.ef_search (1,000)
candidates, so a visibility filter that keeps a quarter of them left about 250, and recall@24 fell to 0.83 at a
million photos; an IVFFlat scan hands over every row of the lists it reads, nearest first, so the filter loses
nothing of them (captioning/search/pgvector.py). Its lists are found by k-means over the rows there are when it
is built: `manage.py search_vector_index_build` builds them again after the photos have grown."""

import math

from django.db import migrations

TABLE = "captioning_photo_clip_vector"
INDEXED_DIMENSIONS = (512, 640, 768, 1024)


def list_count(rows: int) -> int:
    """A frozen copy of captioning.search.pgvector.list_count."""
    return max(1, min(rows // 50, 2000))


def vector_table_exists(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
        return cursor.fetchone()[0]


def ivfflat_instead_of_hnsw(apps, schema_editor):
    if not vector_table_exists(schema_editor.connection):
        return
    for dimensions in INDEXED_DIMENSIONS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {TABLE}_hnsw_{dimensions}")
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE dimensions = {dimensions}")
            lists = list_count(cursor.fetchone()[0])
        # pgvector refuses to start a build whose k-means does not fit: its sample of 50 rows a list, the
        # centres, and Elkan's bound of each sample row to each centre.
        samples = 50 * lists
        needed = samples * (dimensions * 4 + 8) + samples * lists * 4 + lists * lists * 4 + 3 * lists * dimensions * 4
        memory_mb = 64 + math.ceil(needed * 1.2 / 2**20)
        schema_editor.execute(f"SET LOCAL maintenance_work_mem = '{memory_mb}MB'")
        schema_editor.execute(
            f"CREATE INDEX {TABLE}_ivfflat_{dimensions} ON {TABLE} "
            f"USING ivfflat ((embedding::vector({dimensions})) vector_cosine_ops) WITH (lists = {lists}) "
            f"WHERE dimensions = {dimensions}"
        )


def hnsw_instead_of_ivfflat(apps, schema_editor):
    if not vector_table_exists(schema_editor.connection):
        return
    for dimensions in INDEXED_DIMENSIONS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {TABLE}_ivfflat_{dimensions}")
        schema_editor.execute(
            f"CREATE INDEX {TABLE}_hnsw_{dimensions} ON {TABLE} "
            f"USING hnsw ((embedding::vector({dimensions})) vector_cosine_ops) WHERE dimensions = {dimensions}"
        )


class Migration(migrations.Migration):
    dependencies = [("captioning", "0013_galleryphoto_first_added_index")]

    operations = [
        migrations.RunPython(ivfflat_instead_of_hnsw, hnsw_instead_of_ivfflat),
    ]
