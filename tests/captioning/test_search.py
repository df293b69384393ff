"""Search: CLIP text-to-image with the photos' own model (its `embed_text`), caption words in every stored
language, one ranked list, only what the user may see; the in-memory index follows the database."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from captioning import engine
from captioning.models import Caption, Gallery, ModelVersion, Photo, Translation
from captioning.search import (
    EmbeddingIndex,
    embedding_index,
    forget_indexes,
    image_search_backend,
    memory,
    photo_search,
)
from captioning.search.image import QueryEmbeddingCache
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_index():
    forget_indexes()
    yield
    forget_indexes()


@pytest.fixture
def add_photo():
    seeds = iter(range(500, 600))

    def add(gallery: Gallery, text: str | None = None, embedding: np.ndarray | None = None, model=None) -> Photo:
        owner = gallery.owner
        content = encode(picture(seed=next(seeds)), "JPEG")
        photo = photo_upload(acting_user=owner, gallery=gallery, file=SimpleUploadedFile("p.jpg", content)).photo
        if text is not None:
            Caption.objects.create(photo=photo, text=text, is_current=True)
        if embedding is not None:
            Photo.objects.filter(pk=photo.pk).update(
                embedding=np.asarray(embedding, dtype="<f4").tobytes(),
                embedding_model=model,
                status=Photo.Status.CAPTIONED,
            )
        return photo

    return add


def found(user, query: str) -> list[Photo]:
    results = photo_search(user=user, query=query)
    return results[: len(results)]


# Caption text ---------------------------------------------------------------------------------------------


def test_caption_words_rank_photos_matching_more_of_them_first(alice, gallery, add_photo):
    both = add_photo(gallery, "A brown DOG running on the beach")
    one = add_photo(gallery, "a dog asleep on a sofa")
    add_photo(gallery, "a cat on a roof")

    assert found(alice, "dog beach") == [both, one]
    assert found(alice, "Dog") in ([one, both], [both, one])  # equal matches, both found, case ignored
    assert found(alice, "zebra") == []


def test_a_translation_finds_its_photo(alice, gallery, add_photo):
    photo = add_photo(gallery, "a dog on a beach")
    caption = photo.captions.get()
    Translation.objects.create(caption=caption, language="fr", text="un chien sur une plage", status="done")
    Translation.objects.create(caption=caption, language="de", text="ein Hund", status="pending")

    assert found(alice, "chien plage") == [photo]
    assert found(alice, "hund") == []  # not translated yet: nothing stored to match


def test_only_the_current_caption_is_searched(alice, gallery, add_photo):
    photo = add_photo(gallery, "a zebra")
    Caption.objects.filter(photo=photo).update(is_current=False)
    Caption.objects.create(photo=photo, text="a horse", is_current=True)
    assert found(alice, "zebra") == []
    assert found(alice, "horse") == [photo]


# Who sees what -------------------------------------------------------------------------------------------


def test_search_finds_only_what_the_user_may_see(alice, bob, make_user, add_photo):
    private = gallery_create(acting_user=alice, title="Private", visibility="private")
    unlisted = gallery_create(acting_user=alice, title="Unlisted", visibility="unlisted")
    public = gallery_create(acting_user=alice, title="Public", visibility="public")
    shared = gallery_create(acting_user=alice, title="Shared", visibility="private")
    gallery_member_set(gallery=shared, acting_user=alice, username="bob", role="viewer")
    photos = {gallery.title: add_photo(gallery, "a red kite") for gallery in (private, unlisted, public, shared)}

    assert set(found(alice, "kite")) == set(photos.values())
    assert set(found(bob, "kite")) == {photos["Public"], photos["Shared"]}
    assert set(found(make_user("carol"), "kite")) == {photos["Public"]}
    assert set(found(None, "kite")) == {photos["Public"]}


def test_image_search_never_ranks_photos_the_user_may_not_see(alice, bob, active_model, add_photo):
    vector = np.ones(active_model.config["clip_embedding_size"], dtype=np.float32)
    hidden = add_photo(gallery_create(acting_user=alice, title="Mine"), embedding=vector, model=active_model)
    visible = add_photo(gallery_create(acting_user=bob, title="Bob's"), embedding=vector, model=active_model)

    results = photo_search(user=bob, query="anything at all")
    assert results.image_search
    assert [hit.photo_id for hit in results.hits] == [visible.pk]
    assert hidden.pk not in {photo.pk for photo in results[:10]}


def test_search_sees_a_photo_through_a_second_album_once_and_only_while_it_is_there(
    alice, bob, active_model, add_photo
):
    from captioning.services.photos import photo_gallery_add, photo_gallery_remove

    vector = np.ones(active_model.config["clip_embedding_size"], dtype=np.float32)
    private = gallery_create(acting_user=alice, title="Mine")
    public = gallery_create(acting_user=alice, title="Shown", visibility="public")
    photo = add_photo(private, "a red kite", embedding=vector, model=active_model)
    assert photo_search(user=bob, query="kite").hits == []

    photo_gallery_add(gallery=public, photo_uuids=[photo.uuid], acting_user=alice)
    seen = photo_search(user=bob, query="kite")
    for_alice = photo_search(user=alice, query="kite")

    assert seen.image_search
    assert [(hit.photo_id, hit.text_match is not None, hit.image_similarity is not None) for hit in seen.hits] == [
        (photo.pk, True, True)
    ]
    assert [hit.photo_id for hit in for_alice.hits] == [photo.pk]  # in two of her galleries, found once

    photo_gallery_remove(gallery=public, photo_uuids=[photo.uuid], acting_user=alice)
    assert photo_search(user=bob, query="kite").hits == []


# CLIP text-to-image --------------------------------------------------------------------------------------


def test_image_search_ranks_by_cosine_with_the_query_embedded_by_the_photos_clip(
    alice, gallery, active_model, add_photo
):
    query = "a small red circle"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    rng = np.random.default_rng(0)
    close = add_photo(gallery, embedding=text_vector * 3.0, model=active_model)  # same direction, other length
    middle = add_photo(gallery, embedding=text_vector + rng.normal(0, 0.5, text_vector.shape), model=active_model)
    opposite = add_photo(gallery, embedding=-text_vector, model=active_model)

    results = photo_search(user=alice, query=query)

    assert results.image_search
    assert [hit.photo_id for hit in results.hits] == [close.pk, middle.pk, opposite.pk]
    assert results.hits[0].image_similarity == pytest.approx(1.0, abs=1e-5)
    assert results.hits[-1].image_similarity == pytest.approx(-1.0, abs=1e-5)


def test_a_caption_match_and_an_image_match_rank_above_either_alone(alice, gallery, active_model, add_photo):
    query = "yellow star"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    both = add_photo(gallery, "a yellow star", embedding=text_vector, model=active_model)
    words_only = add_photo(gallery, "a yellow star", embedding=-text_vector, model=active_model)
    image_only = add_photo(gallery, "something else", embedding=text_vector * 0.9, model=active_model)

    hits = photo_search(user=alice, query=query).hits
    assert hits[0].photo_id == both.pk
    assert {hit.photo_id for hit in hits[1:]} == {words_only.pk, image_only.pk}
    assert hits[0].text_match == pytest.approx(2.0)  # both words and the whole phrase


def test_text_search_still_answers_when_the_model_cannot_be_loaded(alice, gallery, add_photo, tmp_path):
    broken = ModelVersion.objects.create(
        name="gone", checkpoint_path=str(tmp_path / "missing"), config={"clip_model": "x"}, is_active=True
    )
    photo = add_photo(gallery, "a blue boat", embedding=np.ones(8), model=broken)

    results = photo_search(user=alice, query="boat")

    assert [hit.photo_id for hit in results.hits] == [photo.pk]
    assert not results.image_search
    assert "unavailable" in results.notes[0]


def test_the_query_is_embedded_once_for_paging(alice, gallery, active_model, add_photo, monkeypatch):
    from mlcore.captioner import Captioner

    calls = []
    real = Captioner.embed_text
    monkeypatch.setattr(Captioner, "embed_text", lambda self, texts: calls.append(texts) or real(self, texts))
    add_photo(gallery, embedding=np.ones(active_model.config["clip_embedding_size"]), model=active_model)
    photo_search(user=alice, query="a kite")
    photo_search(user=alice, query="a kite")
    assert calls == [["a kite"]]


# The in-memory index -------------------------------------------------------------------------------------


def test_the_index_follows_new_changed_and_deleted_photos(alice, gallery, active_model, add_photo, monkeypatch):
    monkeypatch.setattr(memory, "RECOUNT_SECONDS", 0)  # every refresh counts, so deletions show at once
    size = active_model.config["clip_embedding_size"]
    first = add_photo(gallery, embedding=np.eye(size)[0], model=active_model)
    index = EmbeddingIndex(active_model.pk)
    index.refresh()
    assert index.photo_ids.tolist() == [first.pk]

    second = add_photo(gallery, embedding=np.eye(size)[1] * 5, model=active_model)
    index.refresh()
    assert sorted(index.photo_ids.tolist()) == sorted([first.pk, second.pk])
    row = index.photo_ids.tolist().index(second.pk)
    assert np.linalg.norm(index.vectors[row]) == pytest.approx(1.0)  # stored normalised

    Photo.objects.filter(pk=first.pk).update(
        embedding=np.eye(size, dtype="<f4")[2].tobytes(), updated_at=first.updated_at.replace(year=2100)
    )
    index.refresh()
    row = index.photo_ids.tolist().index(first.pk)
    assert index.vectors[row][2] == pytest.approx(1.0)

    second.delete()
    index.refresh()
    assert index.photo_ids.tolist() == [first.pk]


def test_a_deleted_photo_is_never_shown_and_leaves_the_index_when_the_photos_are_counted_again(
    alice, gallery, active_model, add_photo, monkeypatch
):
    size = active_model.config["clip_embedding_size"]
    kept = add_photo(gallery, embedding=np.eye(size)[0], model=active_model)
    deleted = add_photo(gallery, embedding=np.eye(size)[1], model=active_model)
    index = embedding_index(active_model.pk)
    deleted_id = deleted.pk
    deleted.delete()

    results = photo_search(user=alice, query="anything at all")

    assert deleted_id in index.photo_ids.tolist()  # not counted again yet: a count reads the whole index
    assert [photo.pk for photo in results[:10]] == [kept.pk]
    later = time.monotonic() + memory.RECOUNT_SECONDS
    monkeypatch.setattr(memory, "time", SimpleNamespace(monotonic=lambda: later))
    assert embedding_index(active_model.pk).photo_ids.tolist() == [kept.pk]


def test_the_index_grows_past_its_first_capacity(alice, gallery, active_model, add_photo):
    size = active_model.config["clip_embedding_size"]
    rng = np.random.default_rng(1)
    photos = [add_photo(gallery, embedding=rng.normal(size=size), model=active_model) for _ in range(20)]
    index = EmbeddingIndex(active_model.pk)
    index.refresh()
    photos += [add_photo(gallery, embedding=rng.normal(size=size), model=active_model) for _ in range(20)]
    index.refresh()  # the first load held exactly 20 rows
    assert sorted(index.photo_ids.tolist()) == sorted(photo.pk for photo in photos)
    for photo in photos:
        row = index.photo_ids.tolist().index(photo.pk)
        expected = photo.__class__.objects.get(pk=photo.pk).embedding_vector()
        assert np.allclose(index.vectors[row], expected / np.linalg.norm(expected), atol=1e-6)


# The page and the API ------------------------------------------------------------------------------------


def test_every_page_has_the_search_box_and_the_results_page_shows_tiles(client, alice, gallery, add_photo):
    for seed in range(30):
        add_photo(gallery, f"a green kite number {seed}")
    client.force_login(alice)
    assert 'name="q"' in client.get(reverse("gallery-list")).content.decode()

    first = client.get(reverse("search"), {"q": "green kite"}).content.decode()
    assert "30 photos found" in first
    assert first.count('class="tile ') == 24
    second = client.get(reverse("search"), {"q": "green kite", "page": 2}).content.decode()
    assert second.count('class="tile ') == 6


def test_the_search_api_is_ranked_and_paginated(client, alice, gallery, add_photo):
    best = add_photo(gallery, "a purple kite over a purple sea")
    add_photo(gallery, "a kite")
    client.force_login(alice)
    data = client.get(reverse("api-search"), {"q": "purple kite", "page_size": 1}).json()
    assert data["count"] == 2 and data["next"]
    assert data["results"][0]["id"] == str(best.uuid)
    assert data["results"][0]["text_match"] == pytest.approx(2.0)
    assert data["image_search"] is False and data["notes"] == []
    assert client.get(reverse("api-search")).status_code == 400  # q is required


# Where images are searched ---------------------------------------------------------------------------------


def test_images_are_searched_in_postgresql_where_it_has_pgvector_else_in_memory():
    available = False
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')")
            available = cursor.fetchone()[0]
    assert image_search_backend() == ("pgvector" if available else "memory")


class QueryText(str):
    """A query whose hashing lets other threads run: in the middle of every dict operation of the cache."""

    def __hash__(self) -> int:
        time.sleep(0)
        return str.__hash__(self)


def test_the_query_embedding_cache_keeps_its_size_under_concurrent_searches():
    cache = QueryEmbeddingCache(size=2)
    errors = []

    def search_many(thread: int) -> None:
        try:
            for number in range(2000):
                key = (1, "model", QueryText(f"query {(number * (thread + 3)) % 10}"))
                if cache.get(key) is None:
                    cache.put(key, np.full(4, number, dtype=np.float32))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=search_many, args=(thread,)) for thread in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache._vectors) <= 2
