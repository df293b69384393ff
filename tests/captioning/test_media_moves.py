"""`manage.py move_media_to_object_store`: photos uploaded to the file system move into a real S3 server (moto's)
under the same names, each copy checked, a second run doing only what is left."""

import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from captioning.services.media_moves import media_move
from captioning.services.photos import photo_upload
from tests.captioning.conftest import files_under, s3_client, use_object_store
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def photos_on_disk(alice, gallery):
    return [
        photo_upload(
            acting_user=alice, gallery=gallery, file=SimpleUploadedFile(f"{seed}.jpg", encode(picture(seed=seed)))
        ).photo
        for seed in (31, 32, 33)
    ]


@pytest.fixture
def store_after_switch(settings, monkeypatch, media_root, s3_endpoint):
    """What a deployment does: the photos are on the file system, then the settings name a bucket."""

    def switch():
        return use_object_store(settings, monkeypatch, media_root, s3_endpoint)

    return switch


def move(*options: str) -> str:
    output = io.StringIO()
    call_command("move_media_to_object_store", *options, stdout=output, stderr=io.StringIO())
    return output.getvalue()


def disk_content(media_root, name: str) -> bytes:
    return (media_root / name).read_bytes()


def stored_content(store, name: str) -> bytes:
    return s3_client(store.endpoint).get_object(Bucket=store.bucket, Key=name)["Body"].read()


def all_names(photos) -> list[str]:
    return sorted(name for photo in photos for name in photo.storage_names)


def test_every_file_is_copied_under_its_name_and_served_from_the_store(
    client, alice, photos_on_disk, store_after_switch, media_root
):
    store = store_after_switch()

    assert move().splitlines()[-1] == "9 files copied, 0 already in the store, 0 deleted from " + str(media_root) + "."

    assert store.names() == all_names(photos_on_disk)
    for name in store.names():
        assert stored_content(store, name) == disk_content(media_root, name)
    assert len(files_under(media_root)) == 9  # kept: the site may still be reading them
    (media_root / photos_on_disk[0].thumbnail.name).unlink()
    client.force_login(alice)
    thumbnail = client.get(reverse("photo-thumbnail", args=[photos_on_disk[0].uuid]))
    assert b"".join(thumbnail.streaming_content) == stored_content(store, photos_on_disk[0].thumbnail.name)


def test_a_second_run_sends_only_what_is_missing_or_differs(photos_on_disk, store_after_switch, media_root):
    store = store_after_switch()
    move()
    lost, damaged = photos_on_disk[0].original.name, photos_on_disk[1].display_image.name
    s3 = s3_client(store.endpoint)
    s3.delete_object(Bucket=store.bucket, Key=lost)
    s3.put_object(Bucket=store.bucket, Key=damaged, Body=b"not the display image")

    assert move().splitlines()[-1].startswith("2 files copied, 7 already in the store, 0 deleted")

    for name in (lost, damaged):
        assert stored_content(store, name) == disk_content(media_root, name)


def test_delete_local_removes_each_checked_file_and_its_folder(photos_on_disk, store_after_switch, media_root):
    store = store_after_switch()
    move()  # the first pass, while the site still reads the files from disk

    assert move("--delete-local").splitlines()[-1].startswith("0 files copied, 9 already in the store, 9 deleted")

    assert files_under(media_root) == []
    assert not any((media_root / photo.original.name).parent.exists() for photo in photos_on_disk)
    assert len(store.names()) == 9
    assert move("--delete-local").splitlines()[-1].startswith("0 files copied, 0 already in the store, 0 deleted")


def test_a_file_in_neither_store_is_reported_and_the_others_still_move(photos_on_disk, store_after_switch, media_root):
    store = store_after_switch()
    missing = photos_on_disk[2].thumbnail.name
    (media_root / missing).unlink()

    with pytest.raises(CommandError, match="1 files missing, 0 copies differ"):
        move()

    assert store.names() == sorted(set(all_names(photos_on_disk)) - {missing})


def test_the_command_refuses_to_run_without_an_object_store(photos_on_disk):
    with pytest.raises(CommandError, match="AWS_STORAGE_BUCKET_NAME"):
        move()


class DamagingStorage(FileSystemStorage):
    """A store that writes one byte wrong: what a bad disk or a broken proxy would do."""

    def _save(self, name, content):
        data = bytearray(content.read())
        data[len(data) // 2] ^= 0xFF
        return super()._save(name, ContentFile(bytes(data)))


def test_a_copy_that_reads_back_different_keeps_its_source_file(photos_on_disk, media_root, tmp_path):
    report = media_move(
        source=FileSystemStorage(location=media_root),
        destination=DamagingStorage(location=tmp_path / "destination"),
        delete_from_source=True,
    )

    assert (report.copied, report.deleted_from_source) == (0, 0)
    assert sorted(report.mismatched) == all_names(photos_on_disk)
    assert len(files_under(media_root)) == 9
