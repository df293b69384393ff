"""The API's lists read a fixed number of queries, however many rows they present: a field a list reads that its
selector left out (captioning.selectors reads only the columns lists present) would cost one query per row."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from captioning.models import Caption, GalleryPhoto, ModelVersion
from captioning.services.galleries import gallery_create
from captioning.services.photos import photo_gallery_add
from tests.api.conftest import caption, upload


def _queries(client, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def _captioned_photos(people, gallery, seeds: range) -> None:
    """Photos with each kind of caption: by a model, and rewritten by hand and reviewed."""
    model, _created = ModelVersion.objects.get_or_create(name="coco", checkpoint_path="/nowhere")
    for seed in seeds:
        photo = upload(people["owner"], gallery, seed=seed, name=f"{seed}.jpg")
        if seed % 2:
            caption(photo, f"a dog number {seed}", model_version=model, score=-1.0, decoding={"strategy": "beam"})
        else:
            caption(
                photo,
                f"my words {seed}",
                source=Caption.Source.EDITED,
                created_by=people["owner"],
                reviewed_by=people["staff"],
                reviewed_at=timezone.now(),
            )


def test_the_photo_list_reads_as_many_queries_for_many_photos_as_for_two(people, private_gallery, api_client_for):
    client = api_client_for(people["viewer"])
    paths = ["/api/photos/", f"/api/photos/?gallery={private_gallery.public_id}&text=my"]
    _captioned_photos(people, private_gallery, range(1, 3))
    two = {path: _queries(client, path) for path in paths}
    _captioned_photos(people, private_gallery, range(3, 9))
    assert {path: _queries(client, path) for path in paths} == two


def test_the_gallery_list_reads_as_many_queries_for_many_galleries_as_for_one(people, private_gallery, api_client_for):
    client = api_client_for(people["viewer"])
    one = _queries(client, "/api/galleries/")
    for number in range(4):
        gallery_create(acting_user=people["stranger"], title=f"Public {number}", visibility="public")
    assert _queries(client, "/api/galleries/") == one


def test_a_page_shorter_than_the_page_size_is_counted_without_a_count_query(people, private_gallery, api_client_for):
    client = api_client_for(people["viewer"])
    _captioned_photos(people, private_gallery, range(1, 4))
    for path, counted in [("/api/photos/?page_size=3", True), ("/api/photos/?page_size=4", False)]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).json()["count"] == 3
        assert any("COUNT(" in query["sql"] for query in queries) == counted, path
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/galleries/").json()["count"] == 1
    assert not any("COUNT(" in query["sql"] for query in queries)


def test_the_photo_lists_count_adds_up_to_what_its_pages_hold(people, private_gallery, api_client_for):
    _captioned_photos(people, private_gallery, range(1, 6))
    library_only = upload(people["owner"], private_gallery, seed=9, name="mine.jpg")
    GalleryPhoto.objects.filter(photo=library_only).delete()
    public = gallery_create(acting_user=people["stranger"], title="Public", visibility="public")
    upload(people["stranger"], public, seed=10, name="theirs.jpg")
    # Held by two galleries the viewer may see (counted once), one of them public.
    album = gallery_create(acting_user=people["owner"], title="Album", visibility="public")
    in_two = GalleryPhoto.objects.filter(gallery=private_gallery).first().photo
    photo_gallery_add(gallery=album, photo_uuids=[in_two.uuid], acting_user=people["owner"])
    queries = [
        "",
        "?text=dog",
        f"?gallery={private_gallery.public_id}",
        "?status=queued",
        f"?gallery={public.public_id}",
    ]
    for user in ("owner", "viewer", "stranger", "anonymous"):
        client = api_client_for(people[user])
        for query in queries:
            separator = "&" if query else "?"
            page = client.get(f"/api/photos/{query}{separator}page_size=2").json()
            every = client.get(f"/api/photos/{query}{separator}page_size=200").json()
            assert page["count"] == len(every["results"]), (user, query)
