"""Concurrent writes on the default database (SQLite): two clients upload at once through a real gunicorn while
a real worker captions. A transaction that reads and then writes used to be refused at once ("database is
locked", a 500) whatever the busy timeout; every request must now wait its turn and succeed."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from captioning.models import Photo
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from tests.captioning.helpers import encode, picture, wait_for

pytestmark = pytest.mark.slow

UPLOADS_PER_CLIENT = 20


def upload_one_at_a_time(base_url: str, token: str, gallery: str, files: list[tuple[str, bytes]]) -> list[tuple]:
    """One client (its own process): each file in its own request, as the upload page sends them."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    answers = []
    for name, content in files:
        response = session.post(
            f"{base_url}/api/photos/", data={"gallery": gallery}, files={"files": (name, content)}, timeout=120
        )
        answers.append((name, response.status_code, response.text[:300]))
    return answers


def test_two_clients_uploading_while_the_worker_captions_get_no_errors(
    alice, start_web_server, start_worker, save_random_checkpoint
):
    if connection.vendor != "sqlite":
        pytest.skip("the locking this checks is SQLite's")
    model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=7), activate=True)
    gallery = gallery_create(acting_user=alice, title="Busy")
    token = Token.objects.create(user=alice).key
    worker = start_worker()
    rates = {f"API_THROTTLE_{scope}": "100000/minute" for scope in ("ANONYMOUS", "USER", "UPLOADS")}
    server = start_web_server(workers=2, **rates)
    clients = [
        [(f"c{client}-{index}.jpg", encode(picture(seed=client * 100 + index))) for index in range(UPLOADS_PER_CLIENT)]
        for client in range(2)
    ]

    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("fork")) as pool:
        runs = [
            pool.submit(upload_one_at_a_time, server.base_url, token, gallery.public_id, files) for files in clients
        ]
        answers = [answer for run in runs for answer in run.result()]

    failures = [answer for answer in answers if answer[1] != 201]
    assert failures == [], f"{len(failures)} of {len(answers)} uploads failed:\n{server.process.log()[-3000:]}"
    photos = Photo.objects.filter(galleries=gallery)
    names = sorted(photos.values_list("original_filename", flat=True))
    assert names == sorted(name for files in clients for name, _content in files)  # each stored once
    wait_for(
        lambda: photos.filter(status=Photo.Status.CAPTIONED).count() == 2 * UPLOADS_PER_CLIENT,
        timeout=240,
        what="every upload captioned",
        worker=worker,
    )
    assert not photos.exclude(error_message="").exists()
    assert "database is locked" not in worker.log()
