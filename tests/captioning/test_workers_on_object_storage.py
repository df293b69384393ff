"""Two machines' worth of workers with no shared file system: a gunicorn and two `qcluster` processes, each in a
working directory of its own, share only PostgreSQL (the test database), Redis and a real S3 server (moto's)."""

import os
import re
import sys
import uuid
from pathlib import Path

import pytest
import requests
from django.db.models import Count
from django_q.models import Success
from rest_framework.authtoken.models import Token

from captioning.models import Caption, Photo
from captioning.services.galleries import gallery_create
from tests.captioning.conftest import REPO_ROOT, files_under, process_environment, spawn
from tests.captioning.helpers import encode, picture, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("REDIS_TEST_URL"), reason="REDIS_TEST_URL is not set (CI sets it)"),
]

PHOTOS = 40
PROCESSED = re.compile(r"Processed 'captioning\.tasks\.caption_pending_photos' \((?P<name>[^)]+)\)")


def captioned_by(log: str) -> int:
    """How many photos the tasks this worker's log names captioned (each task's result holds its count)."""
    names = PROCESSED.findall(log)
    return sum(task.result["captioned"] for task in Success.objects.filter(name__in=names))


def test_two_workers_without_shared_disks_caption_each_photo_exactly_once(
    alice, object_store, start_web_server, active_model, isolated_files, tmp_path
):
    import redis

    redis.Redis.from_url(os.environ["REDIS_TEST_URL"]).flushdb()
    shared = {
        **object_store.environment,
        "REDIS_URL": os.environ["REDIS_TEST_URL"],
        "Q_CLUSTER_NAME": f"clippro-{uuid.uuid4().hex[:8]}",
        "CAPTION_BATCH_SIZE": "2",
    }
    machines = {name: tmp_path / name for name in ("web", "worker-a", "worker-b")}
    for directory in machines.values():
        (directory / "tmp").mkdir(parents=True)
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = []
    for name in ("worker-a", "worker-b"):
        env = process_environment(
            isolated_files, **shared, CLIPPRO_DATA_DIR=str(machines[name]), TMPDIR=str(machines[name] / "tmp")
        )
        command = [sys.executable, str(REPO_ROOT / "manage.py"), "qcluster"]
        workers.append(spawn(command, env, logs / f"{name}.log", cwd=machines[name]))
    try:
        for worker in workers:
            wait_for(lambda w=worker: " running." in w.log(), timeout=120, what="the cluster to start", worker=worker)
        web = start_web_server(**shared, CLIPPRO_DATA_DIR=str(machines["web"]), TMPDIR=str(machines["web"] / "tmp"))
        gallery = gallery_create(acting_user=alice, title="Shared by two workers")
        headers = {"Authorization": f"Token {Token.objects.create(user=alice).key}"}

        for index in range(PHOTOS):
            response = requests.post(
                f"{web.base_url}/api/photos/",
                data={"gallery": gallery.public_id},
                files={"files": (f"{index}.jpg", encode(picture(seed=500 + index)), "image/jpeg")},
                headers=headers,
                timeout=60,
            )
            assert response.status_code == 201, response.text

        wait_for(
            lambda: Photo.objects.filter(status=Photo.Status.CAPTIONED).count() == PHOTOS,
            timeout=300,
            what=f"{PHOTOS} photos captioned",
            worker=workers[0],
        )
        # Each task's result is recorded by its cluster just after its photos are written.
        wait_for(
            lambda: sum(captioned_by(worker.log()) for worker in workers) == PHOTOS,
            timeout=60,
            what="every task's result recorded",
            worker=workers[1],
        )
    finally:
        for worker in workers:
            worker.stop()

    shares = [captioned_by(worker.log()) for worker in workers]
    print(f"worker-a captioned {shares[0]}, worker-b {shares[1]}")
    assert all(share > 0 for share in shares), shares
    captions_per_photo = Photo.objects.annotate(caption_count=Count("captions")).values_list("caption_count", flat=True)
    assert sorted(captions_per_photo) == [1] * PHOTOS
    assert set(Photo.objects.values_list("attempts", flat=True)) == {1}
    assert Caption.objects.filter(model_version=active_model, is_current=True).count() == PHOTOS
    assert len(object_store.names()) == 3 * PHOTOS
    leftovers: list[Path] = [path for directory in machines.values() for path in files_under(directory)]
    assert leftovers == [], leftovers
    assert files_under(isolated_files / "media") == []
