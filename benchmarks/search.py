"""Search latency at 10,000 and 100,000 photos (captioning/search.py).

What a search costs, measured on a database filled with synthetic photos: 512-d random CLIP embeddings (the
size of ViT-B/32's; the values do not change the cost), one caption each from a small vocabulary and a French
translation for one in five, spread over galleries that are the user's own, shared with them, public, or
others' private ones (so the visibility filter has work to do). No image files are written.

Reported for each size:
- the first search of a process, which loads the embedding matrix from the database;
- a warm search (the matrix in memory), p50 and p95 over varied queries, for a signed-in user and for an
  anonymous visitor, split into the image part (freshness check + matrix product) and the caption part (SQL);
- a search right after 100 photos were embedded (the incremental refresh);
- the matrix's memory, and the CLIP text tower's time to embed one query (ViT-B/32, random weights, CPU).

Caption words: each caption is "a <colour> <thing> <place>" from small lists (each word in 5 to 15% of
captions: the hard case, many rows match) and one in five also names a rare word (each in about 0.1%).

The query embedding inside the searches is a fixed random vector: the text tower is timed on its own.

    python benchmarks/search.py                                  # SQLite in a temporary folder
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/clippro_search_bench python benchmarks/search.py
    python benchmarks/search.py --sizes 10000 --queries 50
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

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


def setup_django(database_url: str | None, data_dir: str) -> None:
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
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def fill(photos: int, dimension: int, seed: int = 0) -> dict:
    """Users, galleries and `photos` embedded photos with captions. Returns who to search as."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from captioning.models import Caption, Gallery, GalleryMembership, ModelVersion, Photo, Translation

    rng = np.random.default_rng(seed)
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
    batch = 5000
    for start in range(0, photos, batch):
        count = min(batch, photos - start)
        vectors = rng.standard_normal((count, dimension), dtype=np.float32)
        rows = []
        for offset in range(count):
            number = start + offset
            gallery = galleries[number % gallery_count]
            rows.append(
                Photo(
                    owner_id=gallery.owner_id,
                    gallery=gallery,
                    original=f"photos/bench/{number}/original.jpg",
                    display_image=f"photos/bench/{number}/display.webp",
                    thumbnail=f"photos/bench/{number}/thumbnail.webp",
                    sha256=f"{number:064x}",
                    byte_size=1000,
                    width=640,
                    height=480,
                    format="JPEG",
                    status=Photo.Status.CAPTIONED,
                    embedding=vectors[offset].astype("<f4").tobytes(),
                    embedding_model=model,
                )
            )
        with transaction.atomic():
            created = Photo.objects.bulk_create(rows)
            captions = Caption.objects.bulk_create(
                [
                    Caption(
                        photo=photo,
                        text=f"a {rng.choice(COLOURS)} {rng.choice(THINGS)} {rng.choice(PLACES)}"
                        + (f" next to a {rng.choice(RARE)}" if rng.random() < 0.2 else ""),
                        model_version=model,
                        score=float(-rng.random() * 3),
                        clip_score=float(rng.random() * 0.8),
                        is_current=True,
                    )
                    for photo in created
                ]
            )
            Translation.objects.bulk_create(
                [
                    Translation(
                        caption=caption,
                        language="fr",
                        text=" ".join(FRENCH.get(word, word) for word in caption.text.split()),
                        status=Translation.Status.DONE,
                    )
                    for caption in captions[::5]
                ]
            )
    if connection.vendor == "postgresql":
        # What autovacuum does soon after a bulk load: planner statistics and the visibility map that lets
        # the freshness check count from the index alone.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return {"me": me, "model": model, "galleries": galleries, "rng": rng, "dimension": dimension}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def time_searches(user, queries: list[str]) -> dict:
    from captioning import search

    totals, image_parts, text_parts = [], [], []
    real_image, real_text = search._image_ranking, search._text_ranking

    def timed(function, into):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                into.append(time.perf_counter() - started)

        return wrapper

    search._image_ranking, search._text_ranking = timed(real_image, image_parts), timed(real_text, text_parts)
    try:
        for query in queries:
            started = time.perf_counter()
            results = search.photo_search(user=user, query=query)
            first_page = results[:24]  # what a page or the API reads back: visible photos with their captions
            totals.append(time.perf_counter() - started)
            assert len(first_page) <= 24
    finally:
        search._image_ranking, search._text_ranking = real_image, real_text
    return {
        "p50": statistics.median(totals),
        "p95": percentile(totals, 0.95),
        "image_p50": statistics.median(image_parts),
        "text_p50": statistics.median(text_parts),
        "results": len(results),
    }


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dimension", type=int, default=512)
    parser.add_argument("--queries", type=int, default=30, help="searches timed per user and size")
    parser.add_argument("--skip-text-tower", action="store_true")
    args = parser.parse_args()

    database_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="clippro-search-bench-") as data_dir:
        setup_django(database_url, data_dir)
        from django.conf import settings
        from django.core.management import call_command
        from django.db import connection

        from captioning import search

        print(f"database: {connection.vendor} ({settings.DATABASES['default']['NAME']}), numpy {np.__version__}")
        print(f"machine: {os.cpu_count()} CPU(s) visible; {args.queries} queries per measurement\n")
        if not args.skip_text_tower:
            for threads in (1, os.cpu_count()):
                milliseconds = text_tower_seconds(threads=threads) * 1000
                print(f"CLIP ViT-B/32 text tower, one query, CPU, {threads} thread(s): {milliseconds:.0f} ms")
            print()

        for size in sorted(args.sizes):
            call_command("flush", interactive=False, verbosity=0)
            started = time.perf_counter()
            world = fill(size, args.dimension, seed=size)
            print(f"--- {size:,} photos (filled in {time.perf_counter() - started:.0f} s)")

            query_vector = world["rng"].standard_normal(args.dimension).astype(np.float32)
            query_vector /= np.linalg.norm(query_vector)
            search.query_embedding = lambda model_version, query, vector=query_vector: vector
            search.forget_indexes()

            started = time.perf_counter()
            search.photo_search(user=world["me"], query="warm up")
            cold = time.perf_counter() - started
            index = search.embedding_index(world["model"].pk)
            print(
                f"first search (loads the matrix): {cold * 1000:,.0f} ms; matrix {index.vectors.nbytes / 2**20:.0f} MB"
            )

            queries = [QUERIES[n % len(QUERIES)] for n in range(args.queries)]
            for label, user in (("signed-in user", world["me"]), ("anonymous visitor", None)):
                timing = time_searches(user, queries)
                print(
                    f"warm search, {label}: p50 {timing['p50'] * 1000:.1f} ms, p95 {timing['p95'] * 1000:.1f} ms "
                    f"(image part {timing['image_p50'] * 1000:.1f} ms, caption part {timing['text_p50'] * 1000:.1f} ms; "
                    f"{timing['results']} ranked)"
                )

            fill_more(world, 100)
            started = time.perf_counter()
            search.photo_search(user=world["me"], query="dog")
            print(
                f"search after 100 new photos (incremental refresh): {(time.perf_counter() - started) * 1000:.1f} ms\n"
            )
        call_command("flush", interactive=False, verbosity=0)


def fill_more(world: dict, count: int) -> None:
    from captioning.models import Photo

    rng = world["rng"]
    gallery = world["galleries"][0]
    Photo.objects.bulk_create(
        [
            Photo(
                owner_id=gallery.owner_id,
                gallery=gallery,
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


if __name__ == "__main__":
    main()
