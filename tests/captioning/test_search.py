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
from captioning.models import Caption, Gallery, GalleryPhoto, ModelVersion, Photo, Translation
from captioning.search import (
    EmbeddingIndex,
    embedding_index,
    forget_indexes,
    image_search_backend,
    memory,
    photo_search,
    words,
)
from captioning.search.image import LOCAL_CLIP_RELEVANCE, ImageRelevance, QueryEmbeddingCache, image_relevance
from captioning.selectors import photo_id_list_visible_to, photo_list_visible_to
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


def found(user, query: str) -> list[int]:
    results = photo_search(user=user, query=query)
    return [row["id"] for row in results[: len(results)]]


# Caption text ---------------------------------------------------------------------------------------------


def test_caption_words_rank_photos_matching_more_of_them_first(alice, gallery, add_photo):
    both = add_photo(gallery, "A brown DOG running on the beach")
    one = add_photo(gallery, "a dog asleep on a sofa")
    add_photo(gallery, "a cat on a roof")

    assert found(alice, "dog beach") == [both.pk, one.pk]
    assert found(alice, "Dog") in ([one.pk, both.pk], [both.pk, one.pk])  # equal matches, both found, case ignored
    assert found(alice, "zebra") == []


def test_a_translation_finds_its_photo(alice, gallery, add_photo):
    photo = add_photo(gallery, "a dog on a beach")
    caption = photo.captions.get()
    Translation.objects.create(caption=caption, language="fr", text="un chien sur une plage", status="done")
    Translation.objects.create(caption=caption, language="de", text="ein Hund", status="pending")

    assert found(alice, "chien plage") == [photo.pk]
    assert found(alice, "hund") == []  # not translated yet: nothing stored to match


def test_like_wildcards_in_a_query_match_only_themselves(alice, gallery, add_photo):
    sale = add_photo(gallery, "a sign saying 50% off")
    other = add_photo(gallery, "a sign saying 500 off")
    add_photo(gallery, "a snakeXcase sign")
    snake = add_photo(gallery, "a snake_case sign")

    hits = photo_search(user=alice, query="50% off").hits
    assert [(hit.photo_id, hit.text_match) for hit in hits] == [(sale.pk, 2.0), (other.pk, 1.0)]
    assert found(alice, "snake_case") == [snake.pk]


def test_a_guess_found_by_its_translation_ranks_after_a_confident_match(alice, gallery, add_photo):
    guess = add_photo(gallery, "a kite")
    Caption.objects.filter(photo=guess).update(confident=False)
    Translation.objects.create(
        caption=guess.captions.get(), language="fr", text="un cerf-volant rouge", status=Translation.Status.DONE
    )
    confident = add_photo(gallery, "un cerf-volant")

    assert found(alice, "cerf-volant rouge") == [confident.pk, guess.pk]


def test_only_the_current_caption_is_searched(alice, gallery, add_photo):
    photo = add_photo(gallery, "a zebra")
    Caption.objects.filter(photo=photo).update(is_current=False)
    Caption.objects.create(photo=photo, text="a horse", is_current=True)
    assert found(alice, "zebra") == []
    assert found(alice, "horse") == [photo.pk]


on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the word index is PostgreSQL's")


@on_postgresql
def test_on_postgresql_each_word_ranks_only_its_newest_photos(alice, gallery, add_photo, settings):
    settings.SEARCH_WORD_CANDIDATES = 2
    old_both = add_photo(gallery, "a dog on a beach")
    dogs = [add_photo(gallery, "a dog") for _ in range(2)]
    beaches = [add_photo(gallery, "a beach") for _ in range(2)]
    new_both = add_photo(gallery, "a dog on the beach")

    # Each word's two newest: the newest photo holding both ranks first; the older one is beyond both lists.
    assert found(alice, "dog beach") == [new_both.pk, beaches[1].pk, dogs[1].pk]
    assert found(alice, "dog") == [new_both.pk, dogs[1].pk]
    settings.SEARCH_WORD_CANDIDATES = 10
    assert found(alice, "dog beach") == [new_both.pk, old_both.pk, beaches[1].pk, beaches[0].pk, dogs[1].pk, dogs[0].pk]


@on_postgresql
def test_the_word_index_follows_every_write_of_captions_and_translations(alice, gallery, add_photo):
    photo = add_photo(gallery, "a hotdog stand")
    assert found(alice, "dog") == [photo.pk]  # a part of a word, through the vocabulary
    flour = add_photo(gallery, "½cup of flour")
    assert found(alice, "½cup") == [flour.pk]  # a word to Python's \w, not to PostgreSQL's

    Caption.objects.filter(photo=photo).update(text="a zebra crossing")
    assert (found(alice, "dog"), found(alice, "zebra")) == ([], [photo.pk])

    translation = Translation.objects.create(
        caption=photo.captions.get(), language="fr", text="un passage piéton", status=Translation.Status.PENDING
    )
    assert found(alice, "passage") == []
    Translation.objects.filter(pk=translation.pk).update(status=Translation.Status.DONE)
    assert found(alice, "passage") == [photo.pk]
    translation.delete()
    assert found(alice, "passage") == []

    Caption.objects.filter(photo=photo).update(is_current=False)
    assert found(alice, "zebra") == []
    with connection.cursor() as cursor:  # what the triggers wrote is what a fill from scratch writes
        cursor.execute(f"SELECT word, photo_id FROM {words.WORDS_TABLE} ORDER BY 1, 2")
        maintained = cursor.fetchall()
        words.caption_words_fill()
        cursor.execute(f"SELECT word, photo_id FROM {words.WORDS_TABLE} ORDER BY 1, 2")
        assert cursor.fetchall() == maintained


# Who sees what -------------------------------------------------------------------------------------------


def test_search_finds_only_what_the_user_may_see(alice, bob, make_user, add_photo):
    private = gallery_create(acting_user=alice, title="Private", visibility="private")
    unlisted = gallery_create(acting_user=alice, title="Unlisted", visibility="unlisted")
    public = gallery_create(acting_user=alice, title="Public", visibility="public")
    shared = gallery_create(acting_user=alice, title="Shared", visibility="private")
    gallery_member_set(gallery=shared, acting_user=alice, username="bob", role="viewer")
    photos = {gallery.title: add_photo(gallery, "a red kite").pk for gallery in (private, unlisted, public, shared)}

    assert set(found(alice, "kite")) == set(photos.values())
    assert set(found(bob, "kite")) == {photos["Public"], photos["Shared"]}
    assert set(found(make_user("carol"), "kite")) == {photos["Public"]}
    assert set(found(None, "kite")) == {photos["Public"]}


def test_better_matches_the_user_may_not_see_leave_room_for_those_they_may(alice, bob, gallery, add_photo):
    hidden = gallery_create(acting_user=bob, title="Bob's", visibility="private")
    for _ in range(3):
        add_photo(hidden, "a red kite")  # the whole phrase: each ranks above the photo alice may see
    mine = add_photo(gallery, "a kite")

    assert [hit.photo_id for hit in photo_search(user=alice, query="red kite", limit=1).hits] == [mine.pk]


def test_the_ids_the_image_index_is_masked_with_are_the_visible_photos(alice, bob, make_user, add_photo):
    galleries = [
        gallery_create(acting_user=alice, title=visibility, visibility=visibility)
        for visibility in ("private", "unlisted", "public")
    ]
    gallery_member_set(gallery=galleries[0], acting_user=alice, username="bob", role="viewer")
    for gallery in galleries:
        add_photo(gallery)
    in_no_gallery = add_photo(galleries[1])
    GalleryPhoto.objects.filter(photo=in_no_gallery).delete()  # alice's library keeps it, for her alone

    for user in (alice, bob, make_user("carol"), None):
        expected = sorted(photo_list_visible_to(user).values_list("pk", flat=True))
        assert sorted(photo_id_list_visible_to(user)) == expected
    assert in_no_gallery.pk in photo_id_list_visible_to(alice)


def test_image_search_never_ranks_photos_the_user_may_not_see(alice, bob, active_model, add_photo):
    vector = engine.captioner_for(active_model).embed_text(["anything at all"])[0].numpy()
    hidden = add_photo(gallery_create(acting_user=alice, title="Mine"), embedding=vector, model=active_model)
    visible = add_photo(gallery_create(acting_user=bob, title="Bob's"), embedding=vector, model=active_model)

    results = photo_search(user=bob, query="anything at all")
    assert results.image_search
    assert [hit.photo_id for hit in results.hits] == [visible.pk]
    assert hidden.pk not in {row["id"] for row in results[:10]}


def test_search_sees_a_photo_through_a_second_album_once_and_only_while_it_is_there(
    alice, bob, active_model, add_photo, settings
):
    from captioning.services.photos import photo_gallery_add, photo_gallery_remove

    settings.SEARCH_IMAGE_FLOOR, settings.SEARCH_IMAGE_MARGIN = -1.0, 2.0  # visibility, not relevance, is tested

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
    relevance = image_relevance(active_model)
    close = add_photo(gallery, embedding=text_vector * 3.0, model=active_model)  # same direction, other length
    middle = add_photo(gallery, embedding=at_cosine(text_vector, 1 - relevance.margin / 2), model=active_model)
    opposite = add_photo(gallery, embedding=-text_vector, model=active_model)

    results = photo_search(user=alice, query=query)

    assert results.image_search
    assert [hit.photo_id for hit in results.hits] == [close.pk, middle.pk]  # the opposite one is no match
    assert results.hits[0].image_similarity == pytest.approx(1.0, abs=1e-5)
    assert results.hits[1].image_similarity == pytest.approx(1 - relevance.margin / 2, abs=1e-5)
    assert opposite.pk not in {hit.photo_id for hit in results.hits}


# What counts as a match ------------------------------------------------------------------------------------


def at_cosine(direction: np.ndarray, cosine: float, seed: int = 0) -> np.ndarray:
    """A unit vector whose cosine with `direction` is `cosine`."""
    unit = direction / np.linalg.norm(direction)
    other = np.random.default_rng(seed).normal(size=unit.shape)
    other -= other.dot(unit) * unit
    return cosine * unit + np.sqrt(1 - cosine**2) * other / np.linalg.norm(other)


def test_image_search_keeps_only_photos_close_to_the_best_one(alice, gallery, active_model, add_photo):
    query = "a green triangle"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    relevance = image_relevance(active_model)
    best_cosine = relevance.floor + relevance.margin + 0.1
    best = add_photo(gallery, embedding=at_cosine(text_vector, best_cosine, seed=1), model=active_model)
    near = add_photo(
        gallery, embedding=at_cosine(text_vector, best_cosine - relevance.margin + 0.01, seed=2), model=active_model
    )
    add_photo(
        gallery, embedding=at_cosine(text_vector, best_cosine - relevance.margin - 0.01, seed=3), model=active_model
    )

    results = photo_search(user=alice, query=query)

    assert [hit.photo_id for hit in results.hits] == [best.pk, near.pk]
    assert results.image_cutoffs == {active_model.name: pytest.approx(best_cosine - relevance.margin, abs=1e-6)}


def test_nothing_below_the_models_floor_is_found_by_image(alice, gallery, active_model, add_photo):
    query = "a blue star"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    floor = image_relevance(active_model).floor
    for seed in range(3):
        add_photo(gallery, embedding=at_cosine(text_vector, floor - 0.01, seed=seed), model=active_model)

    results = photo_search(user=alice, query=query)

    assert results.image_search and results.hits == []
    assert results.summary == "No photos match well"


def test_image_search_ranks_the_same_visible_photos_whether_few_or_many_reach_the_floor(
    alice, bob, active_model, add_photo
):
    # At most `limit` photos above the floor: the database is asked about those alone; more: every visible photo
    # is listed. Either way the best ones bob may see, by cosine, within the margin of the best he may see.
    query = "a purple square"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    hidden = gallery_create(acting_user=alice, title="Mine")
    shown = gallery_create(acting_user=alice, title="Shown", visibility="public")
    for seed, cosine in enumerate((0.97, 0.95)):
        add_photo(hidden, embedding=at_cosine(text_vector, cosine, seed=seed), model=active_model)
    visible = [
        add_photo(shown, embedding=at_cosine(text_vector, cosine, seed=seed), model=active_model)
        for seed, cosine in enumerate((0.9, 0.85, 0.8), start=2)
    ]
    relevance = image_relevance(active_model)

    few = photo_search(user=bob, query=query, limit=10)  # 5 photos above the floor, at most 10 asked for
    many = photo_search(user=bob, query=query, limit=2)

    assert [hit.photo_id for hit in few.hits] == [photo.pk for photo in visible]
    assert [hit.photo_id for hit in many.hits] == [photo.pk for photo in visible[:2]]
    assert few.image_cutoffs == many.image_cutoffs == {active_model.name: pytest.approx(0.9 - relevance.margin)}


def test_the_cut_off_is_the_floor_when_no_photo_the_user_sees_reaches_it_and_absent_when_they_see_none(
    alice, bob, active_model, add_photo
):
    query = "an orange hexagon"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    floor = image_relevance(active_model).floor
    hidden = gallery_create(acting_user=alice, title="Mine")
    add_photo(hidden, embedding=at_cosine(text_vector, floor + 0.1), model=active_model)
    assert photo_search(user=bob, query=query).image_cutoffs == {}

    shown = gallery_create(acting_user=alice, title="Shown", visibility="public")
    add_photo(shown, embedding=at_cosine(text_vector, floor - 0.1, seed=1), model=active_model)
    results = photo_search(user=bob, query=query)

    assert results.hits == []
    assert results.image_cutoffs == {active_model.name: pytest.approx(floor)}


def test_a_word_query_shows_only_the_photos_whose_captions_hold_the_words(alice, gallery, active_model, add_photo):
    query = "lighthouse"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    floor = image_relevance(active_model).floor
    by_words = add_photo(
        gallery, "a lighthouse at dusk", embedding=at_cosine(text_vector, floor - 0.05, seed=1), model=active_model
    )
    for seed in range(2, 6):
        add_photo(gallery, "a harbour", embedding=at_cosine(text_vector, floor - 0.05, seed=seed), model=active_model)
    translated = add_photo(gallery, "a tower", embedding=at_cosine(text_vector, floor - 0.1), model=active_model)
    Translation.objects.create(
        caption=translated.captions.get(), language="fr", text="un lighthouse", status=Translation.Status.DONE
    )

    results = photo_search(user=alice, query=query)

    assert {hit.photo_id for hit in results.hits} == {by_words.pk, translated.pk}
    assert all(hit.image_similarity is None for hit in results.hits)
    assert results.summary == "2 best matches"


def test_the_cut_off_belongs_to_the_models_clip_and_can_be_configured(settings, active_model):
    openai = ModelVersion(name="coco", config={"clip_model": "ViT-B/32"})
    demo = ModelVersion(name="demo", config={"clip_model": "local-dir:clip"})

    assert image_relevance(openai) == ImageRelevance(floor=0.21, margin=0.08)
    assert image_relevance(demo) == image_relevance(active_model) == LOCAL_CLIP_RELEVANCE != image_relevance(openai)

    settings.SEARCH_IMAGE_FLOOR = 0.5
    assert image_relevance(openai) == ImageRelevance(floor=0.5, margin=0.08)
    settings.SEARCH_IMAGE_MARGIN = 0.2
    assert image_relevance(openai) == image_relevance(demo) == ImageRelevance(floor=0.5, margin=0.2)


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
    alice, gallery, active_model, add_photo, monkeypatch, settings
):
    settings.SEARCH_IMAGE_FLOOR, settings.SEARCH_IMAGE_MARGIN = -1.0, 2.0  # every photo matches the query
    size = active_model.config["clip_embedding_size"]
    kept = add_photo(gallery, embedding=np.eye(size)[0], model=active_model)
    deleted = add_photo(gallery, embedding=np.eye(size)[1], model=active_model)
    index = embedding_index(active_model.pk)
    deleted_id = deleted.pk
    deleted.delete()

    results = photo_search(user=alice, query="anything at all")

    assert deleted_id in index.photo_ids.tolist()  # not counted again yet: a count reads the whole index
    assert [row["id"] for row in results[:10]] == [kept.pk]
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
    assert "30 best matches, by their captions." in first
    assert first.count('class="tile ') == 24
    second = client.get(reverse("search"), {"q": "green kite", "page": 2}).content.decode()
    assert second.count('class="tile ') == 6
    nothing = client.get(reverse("search"), {"q": "zebra"}).content.decode()
    assert "No photos match well" in nothing and 'class="tile ' not in nothing


def test_the_search_page_shows_a_guess_as_unsure_and_captions_in_the_chosen_language(client, alice, gallery, add_photo):
    model = ModelVersion.objects.create(name="coco", checkpoint_path="/nowhere")
    guess = add_photo(gallery)
    Caption.objects.create(photo=guess, text="a red kite", is_current=True, model_version=model, confident=False)
    translated = add_photo(gallery, "a blue kite")
    Translation.objects.create(
        caption=translated.captions.get(), language="fr", text="un cerf-volant bleu", status=Translation.Status.DONE
    )
    client.force_login(alice)

    page = client.get(reverse("search"), {"q": "kite", "lang": "fr"}).content.decode()

    assert page.count('class="tile ') == 2
    assert "Unsure: the model (coco) has not seen photos like this. Its guess:" in page
    assert 'alt="a red kite"' not in page and 'alt="a blue kite"' in page  # a guess is never alt text
    assert "un cerf-volant bleu" in page


def test_the_search_api_is_ranked_and_paginated(client, alice, gallery, add_photo):
    best = add_photo(gallery, "a purple kite over a purple sea")
    add_photo(gallery, "a kite")
    client.force_login(alice)
    data = client.get(reverse("api-search"), {"q": "purple kite", "page_size": 1}).json()
    assert data["count"] == 2 and data["next"]
    assert data["results"][0]["id"] == str(best.uuid)
    assert data["results"][0]["text_match"] == pytest.approx(2.0)
    assert data["image_search"] is False and data["notes"] == []
    assert data["summary"] == "2 best matches" and data["image_cutoffs"] == {}
    assert client.get(reverse("api-search"), {"q": "zebra"}).json()["summary"] == "No photos match well"
    assert client.get(reverse("api-search")).status_code == 400  # q is required


def test_the_page_and_the_api_say_how_many_photos_matched_and_the_cut_off(
    client, alice, gallery, active_model, add_photo
):
    query = "a pink circle"
    text_vector = engine.captioner_for(active_model).embed_text([query])[0].numpy()
    add_photo(gallery, embedding=text_vector, model=active_model)
    add_photo(gallery, embedding=-text_vector, model=active_model)
    client.force_login(alice)

    page = client.get(reverse("search"), {"q": query}).content.decode()
    data = client.get(reverse("api-search"), {"q": query}).json()

    assert "1 best match, by what is in them and by their captions." in page
    assert page.count('class="tile ') == 1
    assert data["count"] == 1 and data["summary"] == "1 best match"
    cutoff = max(image_relevance(active_model).floor, 1 - image_relevance(active_model).margin)
    assert data["image_cutoffs"] == {active_model.name: pytest.approx(cutoff, abs=1e-5)}
    assert data["results"][0]["image_similarity"] >= data["image_cutoffs"][active_model.name]


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
