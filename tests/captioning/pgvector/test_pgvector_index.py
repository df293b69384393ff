"""Image search inside PostgreSQL with pgvector: the vector table follows the photos' embedding bytes exactly,
the IVFFlat index answers large visible sets (and finds what exact search finds), exact search answers those
too small for the lists it reads, nothing outside the visible galleries ever comes back, and the admin says which backend runs."""

import numpy as np
import pytest
from django.db import connection
from django.urls import reverse

from captioning.models import Gallery, GalleryPhoto, ModelVersion, Photo
from captioning.search import image_search_backend, pgvector
from captioning.selectors import photo_list_visible_to
from captioning.services.galleries import gallery_create

pytestmark = pytest.mark.django_db

DIMENSIONS = 512


def stored_vector(photo_id: int) -> list[float] | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT embedding::real[] FROM {pgvector.TABLE} WHERE photo_id = %s", [photo_id])
        row = cursor.fetchone()
    return row and row[0]


def add_photos(gallery: Gallery, vectors: np.ndarray, model: ModelVersion) -> list[Photo]:
    start = Photo.objects.count()
    photos = Photo.objects.bulk_create(
        [
            Photo(
                owner_id=gallery.owner_id,
                sha256=f"{start + number:064x}",
                byte_size=1,
                width=1,
                height=1,
                format="JPEG",
                status=Photo.Status.CAPTIONED,
                embedding=vector.astype("<f4").tobytes(),
                embedding_model=model,
            )
            for number, vector in enumerate(vectors)
        ]
    )
    GalleryPhoto.objects.bulk_create([GalleryPhoto(gallery=gallery, photo=photo) for photo in photos])
    return photos


@pytest.fixture
def model() -> ModelVersion:
    return ModelVersion.objects.create(name="vit-b-32", checkpoint_path="/nowhere", config={"clip_model": "ViT-B/32"})


def index_scans() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_numscans(%s::regclass)", [pgvector.index_name(DIMENSIONS)])
        return cursor.fetchone()[0]


@pytest.fixture
def index_of_lists(monkeypatch):
    """Builds the IVFFlat indexes again, 20 lists, over the photos added so far; a search reads `lists_read` of
    them, then twice as many."""

    def build(lists_read: int) -> int:
        monkeypatch.setattr(pgvector, "list_count", lambda rows: 20)
        monkeypatch.setattr(pgvector, "ROWS_READ", 50 * lists_read)
        monkeypatch.setattr(pgvector, "ROWS_READ_AGAIN", 100 * lists_read)
        return pgvector.vector_indexes_build()[DIMENSIONS]

    return build


def clustered(rng: np.random.Generator, subjects: np.ndarray, count: int, cosine: float) -> np.ndarray:
    """Unit vectors at about `cosine` from randomly chosen `subjects` (as CLIP embeddings of photos of a few
    subjects are, and a text query is to the photos it names)."""
    chosen = subjects[rng.integers(0, len(subjects), count)]
    noisy = chosen + rng.normal(0, np.sqrt((1 / cosine**2 - 1) / DIMENSIONS), chosen.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def test_this_database_searches_images_with_pgvector():
    assert pgvector.in_use()
    assert image_search_backend() == "pgvector"


def test_the_vector_table_holds_each_embedding_exactly_and_follows_every_change(alice, gallery, model):
    tricky = np.array([0.0, -0.0, 1.0, -2.5, 1e-45, -3e-39, 3.4e38, 1.17549435e-38], dtype=np.float32)
    photo = add_photos(gallery, [tricky], model)[0]
    assert np.array_equal(np.array(stored_vector(photo.pk), dtype=np.float32), tricky)  # subnormals included

    replaced = np.arange(8, dtype=np.float32) - 3.5
    Photo.objects.filter(pk=photo.pk).update(embedding=replaced.astype("<f4").tobytes())
    assert np.array_equal(np.array(stored_vector(photo.pk), dtype=np.float32), replaced)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT dimensions FROM {pgvector.TABLE} WHERE photo_id = %s", [photo.pk])
        assert cursor.fetchone() == (8,)

    Photo.objects.filter(pk=photo.pk).update(embedding=None)
    assert stored_vector(photo.pk) is None

    again = add_photos(gallery, [replaced], model)[0]
    again.delete()
    assert stored_vector(again.pk) is None

    kept = add_photos(gallery, [replaced], model)[0]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # a truncate waits for no deferred check
        cursor.execute("TRUNCATE captioning_photo CASCADE")  # what Django's flush does
    assert stored_vector(kept.pk) is None


def test_a_bulk_fill_writes_the_same_vectors_as_the_trigger(gallery, model):
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((30, 16), dtype=np.float32)
    other_size = rng.standard_normal((5, 8), dtype=np.float32)  # another CLIP's size, in the same chunk
    photos = add_photos(gallery, vectors, model) + add_photos(gallery, other_size, model)
    by_trigger = [stored_vector(photo.pk) for photo in photos]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {pgvector.TABLE}")

    assert pgvector.vector_table_fill(chunk_size=20) == 35

    by_fill = [stored_vector(photo.pk) for photo in photos]
    assert by_fill == by_trigger
    assert np.array_equal(np.array(by_fill[:30], dtype=np.float32), vectors)
    assert np.array_equal(np.array(by_fill[30:], dtype=np.float32), other_size)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT dimensions, model_version_id, count(*) FROM {pgvector.TABLE} GROUP BY 1, 2")
        assert sorted(cursor.fetchall()) == [(8, model.pk, 5), (16, model.pk, 30)]


def test_a_visible_set_too_small_for_the_lists_read_is_searched_exactly(alice, bob, model, index_of_lists):
    rng = np.random.default_rng(0)
    subjects = clustered(rng, np.eye(DIMENSIONS, dtype=np.float32), 20, 0.05)
    mine = gallery_create(acting_user=alice, title="Mine")
    hidden = gallery_create(acting_user=bob, title="Bob's")
    visible_vectors = clustered(rng, subjects, 30, 0.75)
    visible = add_photos(mine, visible_vectors, model)
    add_photos(hidden, clustered(rng, subjects, 970, 0.75), model)
    assert index_of_lists(lists_read=4) == 20
    query = clustered(rng, subjects, 1, 0.3)[0]
    scans = index_scans()

    photo_ids, similarities = pgvector.nearest([model.pk], query, Photo.objects.filter(galleries=mine), limit=24)

    assert index_scans() == scans + 2  # its 4 lists, then 8, held fewer than 24 of the 30 visible photos
    expected = visible_vectors @ query
    best = np.argsort(-expected)[:24]
    assert set(photo_ids.tolist()) == {visible[row].pk for row in best}
    assert np.allclose(similarities, expected[best], atol=1e-5)


def test_large_visible_sets_use_the_index_with_the_visibility_filter_in_sql(alice, bob, model, index_of_lists):
    rng = np.random.default_rng(1)
    subjects = clustered(rng, np.eye(DIMENSIONS, dtype=np.float32), 20, 0.05)
    public = gallery_create(acting_user=bob, title="Public", visibility="public")
    private = gallery_create(acting_user=bob, title="Private")
    public_vectors = clustered(rng, subjects, 500, 0.75)
    public_photos = add_photos(public, public_vectors, model)
    add_photos(private, clustered(rng, subjects, 500, 0.75), model)
    assert index_of_lists(lists_read=8) == 20  # k-means samples at random: some subjects share a list
    recalls = []
    for query in clustered(rng, subjects, 10, 0.3):
        scans = index_scans()

        photo_ids, _ = pgvector.nearest([model.pk], query, photo_list_visible_to(alice), limit=24)

        assert index_scans() == scans + 1
        assert set(photo_ids.tolist()) <= {photo.pk for photo in public_photos}
        exact = {public_photos[row].pk for row in np.argsort(-(public_vectors @ query))[:24]}
        recalls.append(len(exact & set(photo_ids.tolist())) / 24)
    assert np.mean(recalls) >= 0.95


def test_the_admin_queue_page_says_image_search_runs_in_postgresql(client, django_user_model):
    staff = django_user_model.objects.create_superuser("root", password="a-Long-passw0rd")
    client.force_login(staff)
    page = client.get(reverse("admin:captioning_captioningactivity_changelist")).content.decode()
    assert 'data-image-search-backend="pgvector"' in page
