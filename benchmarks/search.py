"""Search at 100,000 and 1,000,000 photos: the in-memory index against pgvector (captioning/search/).

What a search costs, measured on a database filled with synthetic photos: 512-d CLIP-like embeddings (the size
of ViT-B/32's), one caption each from a small vocabulary and a French translation for one in five, spread over
galleries that are the user's own, shared with them, public, or others' private ones (so the visibility filter
has work to do). No image files are written. The embeddings are clustered as real CLIP embeddings are (photos
of one subject lie close together): 2,000 subjects, each photo at cosine ~0.75 from its subject, each query at
~0.3 from one (the usual text-to-image cosine). Uniformly random vectors would be the worst case of an
approximate index, and no photo collection looks like that.

Reported for each size:
- in memory (SQLite, or PostgreSQL without pgvector): the first search of a process, which loads the embedding
  matrix; warm searches, p50 and p95 over varied queries, for a signed-in user and an anonymous visitor, split
  into the image part and the caption part (SQL); a search right after 100 photos were embedded;
- with pgvector (--pgserver, or a DATABASE_URL with the extension): the IVFFlat index's build time, the same
  warm searches, and recall@24 of the image part against exact search over the same visible photos;
- the memory of a web process (resident, and its peak) after searching with each, beside one that only loaded
  Django, and the CLIP text tower's time to embed one query (ViT-B/32, random weights, CPU).

Caption words: each caption is "a <colour> <thing> <place>" from small lists (each word in 5 to 15% of
captions: the hard case, many rows match) and one in five also names a rare word (each in about 0.1%).
The query embedding inside the searches is fixed per query: the text tower is timed on its own.

Each size has a database of its own (clippro_search_bench_<size>). Photos are written by COPY in batches, so a
million take about 2 GB of this process at most (the exact search behind recall@24 holds the matrix); the IVFFlat
index's k-means and the assignment of rows to its lists run in the leader and a worker per other core.
With --data-dir the databases are kept, and --reuse-data measures again without filling.

    python benchmarks/search.py                                  # SQLite in a temporary folder: in memory only
    python benchmarks/search.py --pgserver                       # PostgreSQL 16 + pgvector (pgserver): both
    python benchmarks/search.py --pgserver --data-dir /tmp/clippro-search-bench --sizes 100000 1000000
    python benchmarks/search.py --pgserver --data-dir /tmp/clippro-search-bench --reuse-data --no-memory
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python benchmarks/search.py
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "brown", "grey", "orange", "purple"]
THINGS = ["dog", "cat", "horse", "kite", "boat", "car", "bicycle", "bird", "train", "pizza", "zebra", "surfer"]
PLACES = ["on a beach", "in a park", "on a street", "in a kitchen", "near a river", "in the snow", "on a field"]
# One caption in five also names one of these, so each is in about 0.1% of captions (as "flamingo" or
# "saxophone" are in COCO), where the words above are each in 5 to 15%.
RARE = [
    f"{stem}{suffix}"
    for stem in ("flamingo", "saxophone", "lighthouse", "gondola", "tractor")
    for suffix in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"
]
SYNC_TRIGGER = "captioning_photo_clip_vector_sync"
FILLED_TABLE = "search_bench_filled"  # the size of a finished fill, for --reuse-data
SUBJECTS = 2000
PHOTO_COSINE = 0.75  # a photo to its subject
QUERY_COSINE = 0.3  # a text query to the subject it names
FRENCH = {"dog": "chien", "cat": "chat", "horse": "cheval", "boat": "bateau", "car": "voiture", "bird": "oiseau"}
QUERIES = [
    "flamingoc",
    "a saxophonek on a street",
    "a dog on a beach",
    "red kite",
    "zebra",
    "a cat in a kitchen",
    "boat near a river",
    "chien",
    "green bicycle on a street",
    "pizza",
    "a surfer in the snow",
    "black horse",
]


def setup_django(database_url: str | None, data_dir: str, *, migrate: bool = True) -> None:
    os.environ.setdefault("CLIPPRO_ENV", "test")
    os.environ["CLIPPRO_DATA_DIR"] = data_dir
    os.environ["LOG_LEVEL"] = "WARNING"
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "clippro_site.settings"
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def fill(photos: int, dimension: int, seed: int) -> None:
    """Users, galleries and `photos` embedded photos with captions, written in batches (COPY on PostgreSQL), so
    a million photos need no more memory than one batch."""
    from django.contrib.auth import get_user_model
    from django.core.management.color import no_style
    from django.db import connection
    from django.utils import timezone

    from captioning.models import Caption, Gallery, GalleryMembership, GalleryPhoto, ModelVersion, Photo, Translation

    rng = np.random.default_rng(seed)
    subjects = subject_vectors(seed, dimension)
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"user{n}", password="!") for n in range(20)])
    me = users[0]
    model = ModelVersion.objects.create(
        name="bench", checkpoint_path="/nowhere", config={"clip_model": "ViT-B/32"}, is_active=True
    )
    gallery_count = max(20, photos // 200)
    visibility = ["public", "private", "private", "unlisted"]
    galleries = Gallery.objects.bulk_create(
        [
            Gallery(
                owner=users[n % len(users)],
                title=f"Gallery {n}",
                slug=f"gallery-{n}",
                visibility=visibility[n % len(visibility)],
                public_id=f"g{n:011d}",
            )
            for n in range(gallery_count)
        ]
    )
    # Some of others' private galleries are shared with `me`.
    GalleryMembership.objects.bulk_create(
        [
            GalleryMembership(gallery=gallery, user=me, role="viewer")
            for gallery in galleries[1::7]
            if gallery.owner_id != me.pk
        ]
    )
    gallery_owners = [gallery.owner_id for gallery in galleries]
    photo_template = Photo(
        owner_id=me.pk,
        byte_size=1000,
        width=640,
        height=480,
        format="JPEG",
        status=Photo.Status.CAPTIONED,
        embedding_model=model,
    )
    placement_template = GalleryPhoto(gallery_id=galleries[0].pk, photo_id=0)
    caption_template = Caption(photo_id=0, text="", model_version=model, is_current=True)
    translation_template = Translation(caption_id=0, language="fr", text="", status=Translation.Status.DONE)
    filled_at = timezone.now()
    batch = 10_000
    for start in range(0, photos, batch):
        count = min(batch, photos - start)
        vectors = near(subjects[rng.integers(0, SUBJECTS, count)], PHOTO_COSINE, rng)
        photo_rows, placement_rows, caption_rows, translation_rows = [], [], [], []
        for offset in range(count):
            number = start + offset
            photo_id = caption_id = number + 1
            gallery_number = number % gallery_count
            photo_rows.append(
                {
                    "id": photo_id,
                    "uuid": uuid.uuid4(),
                    "owner_id": gallery_owners[gallery_number],
                    "original": f"photos/bench/{number}/original.jpg",
                    "display_image": f"photos/bench/{number}/display.webp",
                    "thumbnail": f"photos/bench/{number}/thumbnail.webp",
                    "sha256": f"{number:064x}",
                    "embedding": vectors[offset].astype("<f4").tobytes(),
                    # One instant each, as uploads have: the in-memory index re-reads every row of its latest one.
                    "updated_at": filled_at + datetime.timedelta(microseconds=number),
                }
            )
            placement_rows.append({"id": photo_id, "photo_id": photo_id, "gallery_id": galleries[gallery_number].pk})
            text = f"a {rng.choice(COLOURS)} {rng.choice(THINGS)} {rng.choice(PLACES)}" + (
                f" next to a {rng.choice(RARE)}" if rng.random() < 0.2 else ""
            )
            caption_rows.append(
                {
                    "id": caption_id,
                    "photo_id": photo_id,
                    "text": text,
                    "score": float(-rng.random() * 3),
                    "clip_score": float(rng.random() * 0.8),
                }
            )
            if number % 5 == 0:
                french = " ".join(FRENCH.get(word, word) for word in text.split())
                translation_rows.append({"id": number // 5 + 1, "caption_id": caption_id, "text": french})
        write_rows(photo_template, photo_rows)
        write_rows(placement_template, placement_rows)
        write_rows(caption_template, caption_rows)
        write_rows(translation_template, translation_rows)
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), [Photo, GalleryPhoto, Caption, Translation]):
            cursor.execute(statement)
        if connection.vendor == "postgresql":
            # What autovacuum does soon after a bulk load: planner statistics and the visibility map that lets
            # the freshness check count from the index alone.
            cursor.execute("VACUUM ANALYZE")


def write_rows(template, rows: list[dict]) -> None:
    """Inserts `rows` of `template`'s model: each row the template's values (its defaults, as Django would
    write them) with the row's columns in their place. COPY on PostgreSQL."""
    from django.db import connection, transaction

    fields = template._meta.concrete_fields
    columns = [field.column for field in fields]
    defaults = [field.get_db_prep_save(field.pre_save(template, add=True), connection) for field in fields]
    table = connection.ops.quote_name(template._meta.db_table)
    values = ([row.get(column, default) for column, default in zip(columns, defaults, strict=True)] for row in rows)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in values:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", list(values))


def subject_vectors(seed: int, dimension: int) -> np.ndarray:
    """The directions photos cluster around: the same for a seed, so a reused database is queried alike."""
    return unit_rows(np.random.default_rng([seed, 1]).standard_normal((SUBJECTS, dimension)))


def world_of(seed: int, dimension: int) -> dict:
    """Who searches a filled database, and the random source of its queries (the same on every run)."""
    from django.contrib.auth import get_user_model

    from captioning.models import Gallery, ModelVersion

    return {
        "me": get_user_model().objects.get(username="user0"),
        "model": ModelVersion.objects.get(name="bench"),
        "galleries": list(Gallery.objects.order_by("pk")),
        "rng": np.random.default_rng([seed, 2]),
        "dimension": dimension,
        "subjects": subject_vectors(seed, dimension),
    }


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return (matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)).astype(np.float32)


def near(directions: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at about `cosine` from each of the unit `directions` (Gaussian noise of the right size)."""
    dimension = directions.shape[-1]
    noise_scale = np.sqrt((1 / cosine**2 - 1) / dimension)
    return unit_rows(directions + rng.normal(0, noise_scale, directions.shape))


def text_tower_seconds(repeats: int = 10, threads: int = 1) -> float:
    import open_clip
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None).eval()
    tokenizer = open_clip.get_tokenizer("ViT-B-32-quickgelu")
    timings = []
    with torch.inference_mode():
        for repeat in range(repeats + 3):
            started = time.perf_counter()
            model.encode_text(tokenizer([QUERIES[repeat % len(QUERIES)]]))
            if repeat >= 3:
                timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@contextmanager
def image_backend(name: str) -> Iterator[None]:
    """Searches images `name`: "memory" forces the in-memory index; "pgvector" keeps what the database has."""
    from captioning.search import pgvector

    real = pgvector.in_use
    if name == "memory":
        pgvector.in_use = lambda: False
    try:
        yield
    finally:
        pgvector.in_use = real


@contextmanager
def fixed_query_embeddings(vectors: dict[str, np.ndarray]) -> Iterator[None]:
    """Each query's embedding is its vector here (no text tower: it is timed on its own)."""
    from captioning.search import image

    real = image.query_embedding
    image.query_embedding = lambda model_version, query: vectors[query]
    try:
        yield
    finally:
        image.query_embedding = real


def query_vectors(world: dict) -> dict[str, np.ndarray]:
    rng, subjects = world["rng"], world["subjects"]
    named = subjects[rng.integers(0, len(subjects), len(QUERIES) + 1)]
    return dict(zip([*QUERIES, "warm up"], near(named, QUERY_COSINE, rng), strict=True))


def time_searches(user, queries: list[str]) -> dict:
    from captioning import search

    totals, image_parts, text_parts = [], [], []
    real_image, real_text = search.image_ranking, search.text_ranking

    def timed(function, into):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - started)

        return wrapper

    search.image_ranking, search.text_ranking = timed(real_image, image_parts), timed(real_text, text_parts)
    try:
        for query in queries:
            started = time.perf_counter()
            results = search.photo_search(user=user, query=query)
            first_page = results[:24]  # what a page or the API reads back: visible photos with their captions
            totals.append(time.perf_counter() - started)
            assert len(first_page) <= 24
    finally:
        search.image_ranking, search.text_ranking = real_image, real_text
    return {
        "p50": statistics.median(totals),
        "p95": percentile(totals, 0.95),
        "image_p50": statistics.median(image_parts),
        "image_p95": percentile(image_parts, 0.95),
        "text_p50": statistics.median(text_parts),
        "results": len(results),
    }


def report_searches(label: str, user, queries: list[str], kind: str = "warm search") -> None:
    timing = time_searches(user, queries)
    print(
        f"  {kind}, {label}: p50 {timing['p50'] * 1000:.1f} ms, p95 {timing['p95'] * 1000:.1f} ms "
        f"(image part p50 {timing['image_p50'] * 1000:.1f} / p95 {timing['image_p95'] * 1000:.1f} ms, "
        f"caption part p50 {timing['text_p50'] * 1000:.1f} ms; {timing['results']} ranked)"
    )


def recall_at_24(world: dict, user, count: int) -> tuple[float, float]:
    """Mean recall@24 of pgvector's image ranking against exact search over the same visible photos, and how
    many photos it ranks (of SEARCH_MAX_RESULTS), for `count` queries."""
    from django.conf import settings

    from captioning.search import memory, pgvector
    from captioning.selectors import photo_list_visible_to

    visible_photos = photo_list_visible_to(user)
    rng, subjects, versions = world["rng"], world["subjects"], [world["model"].pk]
    recalls, ranked = [], []
    for vector in near(subjects[rng.integers(0, len(subjects), count)], QUERY_COSINE, rng):
        exact_ids, exact_similarities = memory.nearest(versions, vector, user, -1.0, 24)  # every visible photo
        exact = set(exact_ids[np.lexsort((-exact_ids, -exact_similarities))][:24].tolist())
        found_ids, _ = pgvector.nearest(versions, vector, visible_photos, settings.SEARCH_MAX_RESULTS)
        ranked.append(len(found_ids))
        recalls.append(len(exact & set(found_ids[:24].tolist())) / max(1, len(exact)))
    return statistics.mean(recalls), statistics.mean(ranked)


def process_memory(backend: str, user_id: int) -> str:
    """A fresh process that searches like a web process with `backend` ("none": Django loaded, no search):
    its resident memory after five searches, and its peak."""
    from django.db import connection

    database = connection.settings_dict["NAME"]
    command = [sys.executable, __file__, "--process-memory", backend, "--user", str(user_id), "--database", database]
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=os.environ).stdout
    return output.strip().splitlines()[-1]


def measure_this_process(backend: str, user_id: int, database: str) -> None:
    setup_django(os.environ.get("DATABASE_URL"), os.environ["CLIPPRO_DATA_DIR"], migrate=False)
    use_database(database)
    from django.contrib.auth import get_user_model

    from captioning import search

    if backend != "none":
        rng = np.random.default_rng(0)
        user = get_user_model().objects.get(pk=user_id)
        vectors = {query: near(rng.standard_normal(512), QUERY_COSINE, rng) for query in QUERIES[:5]}
        with image_backend(backend), fixed_query_embeddings(vectors):
            for query in vectors:
                search.photo_search(user=user, query=query)[:24]
    status = Path("/proc/self/status").read_text()
    rss, peak = (int(re.search(rf"{field}:\s+(\d+) kB", status).group(1)) // 1024 for field in ("VmRSS", "VmHWM"))
    print(f"{rss} MB resident, peak {peak} MB")


def start_pgserver(folder: str, shared_buffers: str) -> str:
    """PostgreSQL 16 with pgvector from the pgserver package, on a Unix socket in `folder` (kept: a later run
    with the same folder finds its databases), restarted if its shared_buffers are not `shared_buffers`: its
    DATABASE_URL."""
    import pgserver
    import psycopg

    server = pgserver.get_server(Path(folder), cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as admin:
        current = admin.execute("SELECT current_setting('shared_buffers')").fetchone()[0]
        if current.lower() != shared_buffers.lower():
            admin.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    if current.lower() != shared_buffers.lower():
        # pgserver runs PostgreSQL as a user of its own, and so must pg_ctl. (Its cleanup() would stop the server
        # only if no other process had ever started it from this folder and been killed.)
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-l", str(server.log), "restart"], pgdata=server.pgdata, user=server.system_user, timeout=120)
    socket_folder = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    return f"postgres://postgres@{quote(socket_folder, safe='')}/postgres"


def database_name(size: int, data_dir: str) -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"clippro_search_bench_{size}"
    return str(Path(data_dir) / f"search_bench_{size}.sqlite3")


def use_database(name: str) -> None:
    """Points Django's connection at database `name` (created on PostgreSQL if missing)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE DATABASE {name}")
    connection.close()
    connection.settings_dict["NAME"] = name


def filled_size() -> int | None:
    """How many photos a finished fill (and index build) left in this database, if one did."""
    from django.db import connection

    if FILLED_TABLE not in connection.introspection.table_names():
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT photos FROM {FILLED_TABLE}")
        row = cursor.fetchone()
    return row and row[0]


def fill_and_index(size: int, dimension: int, seed: int, with_pgvector: bool) -> None:
    """Fills the current database with `size` photos and builds the IVFFlat index, saying how long each took."""
    from django.core.management import call_command
    from django.db import connection

    from captioning.search import pgvector, words

    call_command("flush", interactive=False, verbosity=0)
    word_index = connection.vendor == "postgresql"  # the caption word index: filled once at the end
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {FILLED_TABLE}")
        for table, trigger in words.TRIGGERS.items() if word_index else ():
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    if with_pgvector:  # a bulk load: vectors written at the end, then the index built once
        with connection.cursor() as cursor:
            for dimensions in pgvector.INDEXED_DIMENSIONS:
                cursor.execute(f"DROP INDEX IF EXISTS {pgvector.index_name(dimensions)}")
            cursor.execute(f"ALTER TABLE captioning_photo DISABLE TRIGGER {SYNC_TRIGGER}")
    started = time.perf_counter()
    fill(size, dimension, seed)
    print(f"filled in {time.perf_counter() - started:.0f} s (load average {os.getloadavg()[0]:.1f})", flush=True)
    if word_index:
        started = time.perf_counter()
        words.caption_words_fill()
        with connection.cursor() as cursor:
            for table, trigger in words.TRIGGERS.items():
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
            cursor.execute(f"VACUUM ANALYZE {words.WORDS_TABLE}, {words.VOCABULARY_TABLE}")
        print(f"caption word index filled in {time.perf_counter() - started:.0f} s", flush=True)
    if with_pgvector:
        started = time.perf_counter()
        pgvector.vector_table_fill()
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE captioning_photo ENABLE TRIGGER {SYNC_TRIGGER}")
            cursor.execute(f"VACUUM ANALYZE {pgvector.TABLE}")
        print(f"vector table filled in {time.perf_counter() - started:.0f} s", flush=True)
        workers = max(0, (os.cpu_count() or 1) - 1)
        started = time.perf_counter()
        with connection.cursor() as cursor:  # k-means and the lists' assignment, by the leader and a worker per core
            cursor.execute(f"SET max_parallel_maintenance_workers = {workers}")
            lists = pgvector.vector_indexes_build()[dimension]
            cursor.execute("RESET max_parallel_maintenance_workers")
        print(
            f"IVFFlat index ({lists} lists) built in {time.perf_counter() - started:.0f} s "
            f"({workers} parallel worker(s); load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {FILLED_TABLE} (photos integer)")
        cursor.execute(f"INSERT INTO {FILLED_TABLE} VALUES (%s)", [size])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=30, help="searches timed per user, size and backend")
    parser.add_argument("--recall-queries", type=int, default=50, help="queries for recall@24, per user")
    parser.add_argument("--pgserver", action="store_true", help="start PostgreSQL 16 + pgvector (pgserver)")
    parser.add_argument(
        "--shared-buffers",
        default="8GB",
        help="pgserver's shared_buffers: PostgreSQL's own cache, where the vector table and its index should fit "
        "(5.2 GB at a million 512-d photos)",
    )
    parser.add_argument(
        "--data-dir", help="keep the databases (and pgserver's data folder) here, not in a temporary folder"
    )
    parser.add_argument(
        "--reuse-data",
        action="store_true",
        help="search what an earlier run with this --data-dir filled, each size once",
    )
    parser.add_argument("--no-memory", action="store_true", help="time pgvector only (no in-memory index)")
    parser.add_argument("--skip-text-tower", action="store_true")
    parser.add_argument("--process-memory", choices=["none", "memory", "pgvector"], help=argparse.SUPPRESS)
    parser.add_argument("--user", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.process_memory:
        measure_this_process(args.process_memory, args.user, args.database)
        return
    if args.reuse_data and not args.data_dir:
        parser.error("--reuse-data needs the --data-dir of the run that filled the databases")

    with tempfile.TemporaryDirectory(prefix="clippro-search-bench-") as temporary:
        data_dir = args.data_dir or temporary
        Path(data_dir).mkdir(parents=True, exist_ok=True)
        database_url = (
            start_pgserver(f"{data_dir}/pg", args.shared_buffers) if args.pgserver else os.environ.get("DATABASE_URL")
        )
        setup_django(database_url, data_dir, migrate=False)
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from captioning.search import pgvector

        print(f"database: {connection.vendor}, numpy {np.__version__}")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT version(), current_setting('shared_buffers')")
                version, shared_buffers = cursor.fetchone()
            print(f"{version.split(' on ')[0]}, shared_buffers {shared_buffers}")
        print(f"machine: {os.cpu_count()} CPU(s) visible; {args.queries} queries per measurement\n")
        if not args.skip_text_tower:
            for threads in (1, os.cpu_count()):
                milliseconds = text_tower_seconds(threads=threads) * 1000
                print(f"CLIP ViT-B/32 text tower, one query, CPU, {threads} thread(s): {milliseconds:.0f} ms")
            print()

        for size in sorted(args.sizes):
            use_database(database_name(size, data_dir))
            call_command("migrate", verbosity=0)
            with_pgvector = pgvector.in_use()
            print(
                f"--- {size:,} photos ({settings.DATABASES['default']['NAME']}; load average {os.getloadavg()[0]:.1f})"
            )
            seed = size
            if args.reuse_data and filled_size() == size:
                print(f"reusing the photos filled earlier in {data_dir}")
            else:
                fill_and_index(size, args.dimension, seed, with_pgvector)
            measure(world_of(seed, args.dimension), args, with_pgvector)
            if not args.data_dir:
                call_command("flush", interactive=False, verbosity=0)
            connection.close()


def measure(world: dict, args: argparse.Namespace, with_pgvector: bool) -> None:
    from captioning import search

    vectors = query_vectors(world)
    queries = [QUERIES[n % len(QUERIES)] for n in range(args.queries)]
    users = (("signed-in user", world["me"]), ("anonymous visitor", None))
    backends = (
        ("pgvector",) if args.no_memory and with_pgvector else ("memory", "pgvector") if with_pgvector else ("memory",)
    )
    print(f"image search: {' and '.join(backends)}")
    remove_more(world)
    with fixed_query_embeddings(vectors):
        if "memory" in backends:
            with image_backend("memory"):
                search.forget_indexes()
                started = time.perf_counter()
                search.photo_search(user=world["me"], query="warm up")
                cold = time.perf_counter() - started
                matrix = search.embedding_index(world["model"].pk).vectors.nbytes / 2**20
                print(f"in memory: first search (loads the matrix) {cold * 1000:,.0f} ms; matrix {matrix:.0f} MB")
                for label, user in users:
                    report_searches(label, user, queries)
        if with_pgvector:
            print("pgvector:")
            for label, user in users:
                report_searches(label, user, queries, "first searches after a start")
            seconds = warm_vector_cache()
            print(f"  the vector table and its index read into shared_buffers in {seconds:.1f} s")
            for label, user in users:
                report_searches(label, user, queries)
            for label, user in users:
                recall, ranked = recall_at_24(world, user, args.recall_queries)
                print(f"  recall@24 against exact search, {label}: {recall:.3f} ({ranked:.0f} photos ranked)")
        fill_more(world, 100)
        for backend in backends:
            with image_backend(backend):
                started = time.perf_counter()
                search.photo_search(user=world["me"], query=QUERIES[2])
                milliseconds = (time.perf_counter() - started) * 1000
            print(f"{backend}: search right after 100 new photos: {milliseconds:.1f} ms")
    remove_more(world)
    search.forget_indexes()
    for backend in ("none", *backends):
        print(f"web process, {backend if backend != 'none' else 'no search yet'}: ", end="", flush=True)
        print(process_memory(backend, world["me"].pk))
    print(f"(load average {os.getloadavg()[0]:.1f})\n", flush=True)


def warm_vector_cache() -> float:
    """Reads the vector table (its rows and their out-of-line vectors) and every list of its IVFFlat indexes once, as
    a server that has been searching for a while holds them (pgserver has no pg_prewarm); seconds taken. Searches
    after a start read each list they need from the operating system's cache instead (the first figures)."""
    from django.db import connection, transaction

    from captioning.search import pgvector

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT sum(vector_dims(embedding)) FROM {pgvector.TABLE}")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"SET LOCAL ivfflat.probes = {pgvector.MAX_LISTS}")
        for dimensions in pgvector.INDEXED_DIMENSIONS:
            axis = "[1" + ",0" * (dimensions - 1) + "]"
            cursor.execute(
                f"SELECT photo_id FROM {pgvector.TABLE} WHERE dimensions = %s "
                f"ORDER BY embedding::vector({dimensions}) <=> %s::vector({dimensions}) LIMIT 1",
                [dimensions, axis],
            )
    return time.perf_counter() - started


def remove_more(world: dict) -> None:
    """Removes the photos fill_more added, so a reused database is searched as it was filled."""
    from captioning.models import Photo

    Photo.objects.filter(sha256__startswith="more").delete()


def fill_more(world: dict, count: int) -> None:
    from captioning.models import GalleryPhoto, Photo

    rng = world["rng"]
    gallery = world["galleries"][0]
    created = Photo.objects.bulk_create(
        [
            Photo(
                owner_id=gallery.owner_id,
                sha256=f"more{number:060x}",
                byte_size=1,
                width=1,
                height=1,
                format="JPEG",
                status=Photo.Status.CAPTIONED,
                embedding=rng.standard_normal(world["dimension"]).astype("<f4").tobytes(),
                embedding_model=world["model"],
            )
            for number in range(count)
        ]
    )
    GalleryPhoto.objects.bulk_create([GalleryPhoto(gallery=gallery, photo=photo) for photo in created])


if __name__ == "__main__":
    main()
