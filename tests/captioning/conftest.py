"""Fixtures for the web platform: users, galleries, image files made on the spot, a tiny active model, an
isolated media folder, and a real `manage.py qcluster` worker process on the test database."""

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from captioning import engine
from captioning.models import Gallery, ModelVersion
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "photos"


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path) -> Path:
    """Every test writes photos into its own media folder and Django's upload temp files into its own
    folder, so a test can check that nothing of a refused upload was left on disk."""
    media = tmp_path / "media"
    uploads = tmp_path / "upload-tmp"
    media.mkdir()
    uploads.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(media)}},
    }
    settings.MEDIA_ROOT = media
    settings.FILE_UPLOAD_TEMP_DIR = str(uploads)
    return tmp_path


@pytest.fixture(autouse=True)
def fresh_engine() -> Iterator[None]:
    engine.unload_all()
    yield
    engine.unload_all()


def files_under(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.fixture
def media_files(isolated_files) -> Callable[[], list[Path]]:
    def list_files() -> list[Path]:
        return files_under(isolated_files / "media") + files_under(isolated_files / "upload-tmp")

    return list_files


@pytest.fixture
def make_user(db) -> Callable:
    def make(username: str = "alice", password: str = "a-Long-passw0rd"):
        return get_user_model().objects.create_user(username=username, password=password)

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def gallery(alice) -> Gallery:
    return gallery_create(owner=alice, title="Holidays", visibility=Gallery.Visibility.PRIVATE)


@pytest.fixture
def active_model(db, save_random_checkpoint) -> ModelVersion:
    """A tiny random checkpoint registered as the active model (real model code, gibberish captions)."""
    return model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=3), activate=True)


def database_url() -> str:
    """The URL of the database the tests run on (the test database), for a worker in another process."""
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    credentials = config["USER"] + (f":{config['PASSWORD']}" if config.get("PASSWORD") else "")
    return f"postgres://{credentials}@{config['HOST'] or '127.0.0.1'}:{config['PORT'] or 5432}/{config['NAME']}"


class Worker:
    """A running `manage.py qcluster` process with its output in a file (shown when a test fails)."""

    def __init__(self, process: subprocess.Popen, log_path: Path):
        self.process = process
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL to the cluster and every worker process it forked, as when a machine dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def start_worker(transactional_db, isolated_files) -> Iterator[Callable[..., Worker]]:
    """Starts a real django-q2 cluster (ORM broker) on the test database and this test's media folder.
    The test's writes are committed (transactional_db), so the worker sees them; it is stopped before
    the database is emptied for the next test."""
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        env = {
            **os.environ,
            "CLIPPRO_ENV": "test",
            "DATABASE_URL": database_url(),
            "CLIPPRO_DATA_DIR": str(isolated_files),
            "Q_WORKERS": "1",
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        env.pop("REDIS_URL", None)  # the ORM broker: the queue lives in the test database
        log_path = isolated_files / f"qcluster-{len(workers)}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, str(REPO_ROOT / "manage.py"), "qcluster"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so `kill()` reaches the forked workers too
            )
        worker = Worker(process, log_path)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def media_root(isolated_files) -> Path:
    return isolated_files / "media"


@pytest.fixture
def fixture_photos() -> list[Path]:
    return sorted(PHOTO_FIXTURES.glob("*.jpg"))
