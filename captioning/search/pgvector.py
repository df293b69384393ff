"""The image index inside PostgreSQL, where the pgvector extension is installed (migration
0009_search_pgvector_if_available creates it there and nowhere else).

A trigger on the photos keeps `captioning_photo_clip_vector` (photo, model version, vector) equal to
their embedding bytes, whoever writes them, so nothing in Python maintains it. Each CLIP size the migration
knows (INDEXED_DIMENSIONS) has an HNSW index (cosine); other sizes are searched exactly, as are visible sets of
at most EXACT_SEARCH_MAX_ROWS photos, where filtering an approximate answer would lose too many. The visibility
filter is part of the SQL, so nothing outside it is read. pgvector 0.6 filters the index's candidates after the
index scan, so HNSW_CANDIDATES are asked for: with a filter that keeps a quarter of the photos, about 250 come
back (SEARCH_MAX_RESULTS is 500); recall@24 is measured by benchmarks/search.py."""

import math

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet

from captioning.models import Photo, embedding_from_bytes

TABLE = "captioning_photo_clip_vector"
# The CLIP sizes with an HNSW index: ViT-B/32, ViT-B/16 and RN101 (512), RN50x4 (640), ViT-L/14 and RN50x16
# (768), RN50 and ViT-H/14 (1024). The same list is in the migration, which created them.
INDEXED_DIMENSIONS = (512, 640, 768, 1024)
HNSW_CANDIDATES = 1000  # hnsw.ef_search: pgvector's maximum
EXACT_SEARCH_MAX_ROWS = 20_000

_in_use: dict[str, bool] = {}


def in_use() -> bool:
    """Whether this database has the vector table (PostgreSQL with pgvector when it was migrated)."""
    if connection.vendor != "postgresql":
        return False
    database = connection.settings_dict["NAME"]
    if database not in _in_use:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [TABLE])
            _in_use[database] = cursor.fetchone()[0]
    return _in_use[database]


def nearest(
    model_version_ids: list[int], query_vector: np.ndarray, visible_photos: QuerySet[Photo], limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, cosines) of the `limit` photos of `visible_photos` closest to `query_vector` among those the
    model versions embedded: by the HNSW index, or exactly when few photos are visible."""
    dimensions = int(query_vector.shape[0])
    vector = "[" + ",".join(map(str, query_vector.tolist())) + "]"
    # The selector's own SQL, as a subquery: the visibility rule is written once (captioning.selectors).
    visible_sql, visible_params = visible_photos.values("pk").order_by().query.sql_with_params()
    where = f"model_version_id = ANY(%s) AND dimensions = {dimensions} AND photo_id IN ({visible_sql})"
    filter_params = [model_version_ids, *visible_params]
    with transaction.atomic(), connection.cursor() as cursor:
        exact = dimensions not in INDEXED_DIMENSIONS or _at_most(cursor, where, filter_params, EXACT_SEARCH_MAX_ROWS)
        if exact:
            # Not the indexed expression (the column cast to its size), so the planner cannot use the index.
            distance = "embedding <=> %s::vector"
            order = f"{distance}, photo_id DESC"
        else:
            distance = order = f"embedding::vector({dimensions}) <=> %s::vector({dimensions})"
            # With sorting ruled out, the only plan left is the index's order (on small tables the planner
            # would sort). hnsw.ef_search may stay: only this module scans the HNSW indexes.
            cursor.execute(
                "SELECT current_setting('enable_sort'), set_config('hnsw.ef_search', %s, true), "
                "set_config('enable_sort', 'off', true)",
                [str(HNSW_CANDIDATES)],
            )
            enable_sort = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT photo_id, {distance} FROM {TABLE} WHERE {where} ORDER BY {order} LIMIT %s",
            [vector, *filter_params, vector, limit],
        )
        rows = [(photo_id, 1.0 - distance) for photo_id, distance in cursor.fetchall() if not math.isnan(distance)]
        if not exact:
            cursor.execute("SELECT set_config('enable_sort', %s, true)", [enable_sort])
    return np.array([row[0] for row in rows], dtype=np.int64), np.array([row[1] for row in rows], dtype=np.float32)


def _at_most(cursor, where: str, params: list, count: int) -> bool:
    """Whether at most `count` rows match `where`: counts no further than that."""
    cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {TABLE} WHERE {where} LIMIT %s) AS rows", [*params, count + 1])
    return cursor.fetchone()[0] <= count


def vector_table_fill(database=connection, chunk_size: int = 5000) -> int:
    """Writes every embedded photo's vector into the table, converted here rather than by the trigger's SQL (a
    bulk fill: the migration's, or a load that turned the trigger off). Returns the number of rows written."""
    written, after = 0, 0
    columns = "photo_id, model_version_id, dimensions, embedding"
    with database.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT id, embedding_model_id, embedding FROM captioning_photo "
                "WHERE id > %s AND embedding IS NOT NULL AND embedding_model_id IS NOT NULL ORDER BY id LIMIT %s",
                [after, chunk_size],
            )
            rows = cursor.fetchall()
            if not rows:
                return written
            # Binary: formatting 512 floats as text per row took most of a million-photo fill.
            with cursor.copy(f"COPY {TABLE} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(binary_copy(rows, id_columns=2))
            written += len(rows)
            after = rows[-1][0]


COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # the signature, then no flags and no header extension
COPY_TRAILER = b"\xff\xff"


def binary_copy(rows: list[tuple], id_columns: int) -> bytes:
    """Rows of `id_columns` integer ids and then float32 embedding bytes (photo id, model version id, ...), in
    PostgreSQL's binary COPY format as the columns (those ids..., dimensions, embedding): each row its field
    count, each field its length and big-endian value; a vector is its size (int16), an unused int16 and its
    float4s. Migration 0009 fills its table (which had a gallery id) with it too."""
    by_size: dict[int, list[tuple]] = {}
    for row in rows:
        by_size.setdefault(len(row[id_columns]) // 4, []).append(row)
    blocks = []
    for size, group in by_size.items():
        fields = [("fields", ">i2")]
        for column in range(id_columns):
            fields += [(f"id{column}_length", ">i4"), (f"id{column}", ">i8")]
        fields += [
            ("dimensions_length", ">i4"),
            ("dimensions", ">i4"),
            ("embedding_length", ">i4"),
            ("embedding_size", ">i2"),
            ("embedding_unused", ">i2"),
            ("embedding", ">f4", (size,)),
        ]
        records = np.zeros(len(group), dtype=np.dtype(fields))
        records["fields"] = id_columns + 2
        id_values = np.array([row[:id_columns] for row in group], dtype=np.int64)
        for column in range(id_columns):
            records[f"id{column}_length"] = 8
            records[f"id{column}"] = id_values[:, column]
        records["dimensions_length"] = 4
        records["embedding_length"] = 4 + 4 * size
        records["dimensions"] = records["embedding_size"] = size
        records["embedding"] = embedding_from_bytes(b"".join(bytes(row[id_columns]) for row in group)).reshape(-1, size)
        blocks.append(records.tobytes())
    return COPY_HEADER + b"".join(blocks) + COPY_TRAILER
