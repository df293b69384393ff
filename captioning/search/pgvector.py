"""The image index inside PostgreSQL, where the pgvector extension is installed (migration
0009_search_pgvector_if_available creates it there and nowhere else).

A trigger on the photos keeps `captioning_photo_clip_vector` (photo, model version, vector) equal to
their embedding bytes, whoever writes them, so nothing in Python maintains it. Each CLIP size the migrations
know (INDEXED_DIMENSIONS) has an IVFFlat index (cosine; migration 0014); other sizes are searched exactly.

pgvector 0.6 filters an index's candidates after the scan. An IVFFlat scan reads every row of the lists nearest
the query (ivfflat.probes of them) and returns them nearest first, so the visibility filter, tested on each
candidate in SQL, loses nothing of what those lists hold (HNSW stopped at hnsw.ef_search candidates, 1,000 at
most, and recall@24 fell to 0.83 at a million photos). A search reads about ROWS_READ rows; when those held
fewer visible photos than asked for, ROWS_READ_AGAIN, and then it searches the visible photos exactly (a user
who sees few photos). The lists are found by k-means over the rows there are when the index is built:
`vector_indexes_build` (manage.py search_vector_index_build) builds them again as the photos grow.
recall@24 is measured by benchmarks/search.py."""

import math

import numpy as np
from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from captioning.models import Photo, embedding_from_bytes

TABLE = "captioning_photo_clip_vector"
# The CLIP sizes with an index: ViT-B/32, ViT-B/16 and RN101 (512), RN50x4 (640), ViT-L/14 and RN50x16
# (768), RN50 and ViT-H/14 (1024). The same list is in migrations 0009 and 0014, which created them.
INDEXED_DIMENSIONS = (512, 640, 768, 1024)
# About how many rows a search reads from the index's lists (ivfflat.probes = this / rows a list), and how many
# more a second read takes when those held fewer visible photos than asked for: recall@24 at 100,000 and
# 1,000,000 photos in benchmarks/search.py.
ROWS_READ = 10_000
ROWS_READ_AGAIN = 40_000
# Many short lists: a text query lies far from the photos it names (cosine ~0.3), and a list's centre is the
# mean of the photos it holds, so with several subjects in a list the query no longer finds its centre among the
# nearest (benchmarks/search.py, 100,000 photos: 316 lists reading 10,000 rows found 0.71 of the exact top 24,
# 2,000 lists 0.99). k-means needs about 200 bytes x lists^2 of maintenance_work_mem (1.3 GB in all at 2,000 lists).
ROWS_PER_LIST = 50
MAX_LISTS = 2000


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


def index_name(dimensions: int) -> str:
    return f"{TABLE}_ivfflat_{dimensions}"


def list_count(rows: int) -> int:
    """How many lists an IVFFlat index over `rows` vectors gets: a list per ROWS_PER_LIST rows, at most
    MAX_LISTS."""
    return max(1, min(rows // ROWS_PER_LIST, MAX_LISTS))


def nearest(
    model_version_ids: list[int], query_vector: np.ndarray, visible_photos: QuerySet[Photo], limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, cosines) of the `limit` photos of `visible_photos` closest to `query_vector` among those the
    model versions embedded: by the IVFFlat index, or exactly when the lists it reads hold fewer visible photos
    than that (few photos are visible, or the index is small)."""
    dimensions = int(query_vector.shape[0])
    vector = "[" + ",".join(map(str, query_vector.tolist())) + "]"
    model_filter = f"model_version_id = ANY(%s) AND dimensions = {dimensions}"
    with transaction.atomic(), connection.cursor() as cursor:
        rows = []
        if dimensions in INDEXED_DIMENSIONS:
            # Each candidate the index returns is tested against the selector's own SQL, given that one photo
            # (the visibility rule is written once, in captioning.selectors); an IVFFlat scan returns every row
            # of the lists it reads, nearest first, so the filter loses nothing of them.
            candidate = visible_photos.filter(pk=RawSQL(f"{TABLE}.photo_id", [])).values("pk").order_by()
            candidate_sql, candidate_params = candidate.query.sql_with_params()
            distance = f"embedding::vector({dimensions}) <=> %s::vector({dimensions})"
            cursor.execute("SELECT current_setting('enable_sort')")
            enable_sort, probes_read = cursor.fetchone()[0], None
            for rows_read in (ROWS_READ, ROWS_READ_AGAIN):
                probes = _read_about(cursor, dimensions, rows_read)
                if probes is None or probes == probes_read:
                    break  # no index, or the first read read every list
                probes_read = probes
                cursor.execute(
                    f"SELECT photo_id, {distance} FROM {TABLE} WHERE {model_filter} AND EXISTS ({candidate_sql}) "
                    f"ORDER BY {distance} LIMIT %s",
                    [vector, model_version_ids, *candidate_params, vector, limit],
                )
                rows = cursor.fetchall()
                if len(rows) == limit:
                    break
            cursor.execute("SELECT set_config('enable_sort', %s, true)", [enable_sort])
        if len(rows) < limit:
            # Not the indexed expression (the column cast to its size), so the planner cannot use the index.
            visible_sql, visible_params = visible_photos.values("pk").order_by().query.sql_with_params()
            cursor.execute(
                f"SELECT photo_id, embedding <=> %s::vector FROM {TABLE} WHERE {model_filter} "
                f"AND photo_id IN ({visible_sql}) ORDER BY 2, photo_id DESC LIMIT %s",
                [vector, model_version_ids, *visible_params, limit],
            )
            rows = cursor.fetchall()
    rows = [(photo_id, 1.0 - distance) for photo_id, distance in rows if not math.isnan(distance)]
    return np.array([row[0] for row in rows], dtype=np.int64), np.array([row[1] for row in rows], dtype=np.float32)


def _read_about(cursor, dimensions: int, rows: int) -> int | None:
    """Sets ivfflat.probes so that the index of `dimensions` reads about `rows` rows (from its list count and
    size as PostgreSQL last counted them; every list before it counted any), and turns sorting off for the
    transaction, so that the planner has no plan left but the index's order (on small tables it would sort).
    Returns the probes, or None where there is no index."""
    cursor.execute(
        "SELECT set_config('ivfflat.probes', probes::text, true), set_config('enable_sort', 'off', true) FROM ("
        "  SELECT least(lists, greatest(1, ceil(%s::float8 * lists / greatest(reltuples, 1))))::integer AS probes"
        "  FROM (SELECT option_value::integer AS lists, index.reltuples"
        "    FROM pg_class AS index, pg_options_to_table(index.reloptions)"
        "    WHERE index.relname = %s AND option_name = 'lists') AS sizes) AS chosen",
        [rows, index_name(dimensions)],
    )
    found = cursor.fetchone()
    return None if found is None else int(found[0])


def index_sql(dimensions: int, lists: int) -> str:
    return (
        f"CREATE INDEX {index_name(dimensions)} ON {TABLE} "
        f"USING ivfflat ((embedding::vector({dimensions})) vector_cosine_ops) WITH (lists = {lists}) "
        f"WHERE dimensions = {dimensions}"
    )


def build_memory_mb(lists: int, dimensions: int) -> int:
    """maintenance_work_mem for an IVFFlat build: pgvector refuses to start one whose k-means does not fit (its
    sample of 50 rows a list, the centres, and Elkan's bound of each sample row to each centre)."""
    samples = 50 * lists
    needed = samples * (dimensions * 4 + 8) + samples * lists * 4 + lists * lists * 4 + 3 * lists * dimensions * 4
    return 64 + math.ceil(needed * 1.2 / 2**20)


def vector_indexes_build(database=connection) -> dict[int, int]:
    """(Re)builds the IVFFlat index of each indexed CLIP size, its lists sized for the rows it has now (the
    lists are found by k-means over those rows: build again when the photos have grown several times over, or
    their embeddings changed model). Returns the list count by size."""
    built = {}
    with transaction.atomic(using=database.alias), database.cursor() as cursor:
        for dimensions in INDEXED_DIMENSIONS:
            cursor.execute(f"SELECT count(*) FROM {TABLE} WHERE dimensions = {dimensions}")
            lists = list_count(cursor.fetchone()[0])
            cursor.execute(f"DROP INDEX IF EXISTS {index_name(dimensions)}")
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{build_memory_mb(lists, dimensions)}MB'")
            cursor.execute(index_sql(dimensions, lists))
            built[dimensions] = lists
    return built


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
