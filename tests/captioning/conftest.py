"""Fixtures for the web platform: users, galleries, image files made on the spot, a tiny active model, an
isolated media folder, and a real `manage.py qcluster` worker process on the test database."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection

from captioning import engine
from captioning.models import Gallery, ModelVersion
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from tests.captioning.helpers import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTO_FIXTURES = REPO_ROOT / "tests" / "fixtures" / "photos"


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path) -> Path:
    """Every test writes photos into its own media folder (and its data folder) and Django's upload temp files
    into its own folder, so a test can check that nothing of a refused upload was left on disk."""
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
    settings.DATA_DIR = tmp_path  # models and the model preparation's progress file
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


def process_environment(isolated_files, **extra_env: str) -> dict[str, str]:
    """The environment of a server or worker process on the test database and this test's media folder. Without
    REDIS_URL in `extra_env`: the ORM broker and the database cache, both in the test database."""
    env = {
        **{name: value for name, value in os.environ.items() if name != "REDIS_URL"},
        "CLIPPRO_ENV": "test",
        # django-q2 signs queued tasks with the secret key: the worker must hold the one this process signs with.
        "SECRET_KEY": django_settings.SECRET_KEY,
        "DATABASE_URL": database_url(),
        "CLIPPRO_DATA_DIR": str(isolated_files),
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    return env


def spawn(command: list[str], env: dict[str, str], log_path: Path) -> Worker:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so `kill()` reaches the forked workers too
        )
    return Worker(process, log_path)


@pytest.fixture
def start_worker(transactional_db, isolated_files) -> Iterator[Callable[..., Worker]]:
    """Starts a real django-q2 cluster (ORM broker) on the test database and this test's media folder.
    The test's writes are committed (transactional_db), so the worker sees them; it is stopped before
    the database is emptied for the next test."""
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        env = process_environment(isolated_files, **{"Q_WORKERS": "1", **extra_env})
        worker = spawn(
            [sys.executable, str(REPO_ROOT / "manage.py"), "qcluster"],
            env,
            isolated_files / f"qcluster-{len(workers)}.log",
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@dataclass
class WebServer:
    base_url: str
    process: Worker


@pytest.fixture
def start_web_server(transactional_db, isolated_files) -> Iterator[Callable[..., WebServer]]:
    """Starts gunicorn (`workers` processes) on a free loopback port, on the test database: what production
    runs, so several processes share the database, its cache and its locks."""
    servers: list[WebServer] = []

    def start(workers: int = 1, **extra_env: str) -> WebServer:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log_path = isolated_files / f"gunicorn-{len(servers)}.log"
        command = [sys.executable, "-m", "gunicorn", "clippro_site.wsgi", "--bind", f"127.0.0.1:{port}"]
        command += ["--workers", str(workers), "--timeout", "120"]
        server = WebServer(
            f"http://127.0.0.1:{port}", spawn(command, process_environment(isolated_files, **extra_env), log_path)
        )
        servers.append(server)
        wait_for(lambda: _answers(server.base_url), timeout=60, what="gunicorn to answer", worker=server.process)
        return server

    yield start
    for server in servers:
        server.process.stop()


def _answers(base_url: str) -> bool:
    try:
        urllib.request.urlopen(f"{base_url}/login/", timeout=5).close()
    except OSError:
        return False
    return True


@pytest.fixture
def media_root(isolated_files) -> Path:
    return isolated_files / "media"


@pytest.fixture
def fixture_photos() -> list[Path]:
    return sorted(PHOTO_FIXTURES.glob("*.jpg"))
