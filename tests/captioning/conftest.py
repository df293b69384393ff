"""Fixtures for the web platform: users, galleries, image files made on the spot, a tiny active model, an
isolated media folder, and a real `manage.py qcluster` worker process on the test database."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
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
from clippro_site.env import object_store_options
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
    return gallery_create(acting_user=alice, title="Holidays", visibility=Gallery.Visibility.PRIVATE)


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


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(command: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT) -> Worker:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=cwd,
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
        port = free_loopback_port()
        log_path = isolated_files / f"gunicorn-{len(servers)}.log"
        command = [sys.executable, "-m", "gunicorn", "clippro_site.wsgi", "--bind", f"127.0.0.1:{port}"]
        command += ["--workers", str(workers), "--timeout", "120"]
        server = WebServer(
            f"http://127.0.0.1:{port}", spawn(command, process_environment(isolated_files, **extra_env), log_path)
        )
        servers.append(server)
        wait_for(
            lambda: answers_http(f"{server.base_url}/login/"),
            timeout=60,
            what="gunicorn to answer",
            worker=server.process,
        )
        return server

    yield start
    for server in servers:
        server.process.stop()


def answers_http(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
    except OSError:
        return False
    return True


S3_REGION = "us-east-1"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "clippro-test", "AWS_SECRET_ACCESS_KEY": "clippro-test-secret"}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto's standalone S3 server: a real S3 HTTP API on a free loopback port, for the whole test session."""
    port = free_loopback_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto-server.log"
    command = [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)]
    server = spawn(command, dict(os.environ), log_path)
    endpoint = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_http(f"{endpoint}/moto-api/"), timeout=60, what="moto's S3 server", worker=server)
    yield endpoint
    server.stop()


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class MediaStore:
    """Where this test's photos go: its media folder, or a bucket of its own in the S3 server."""

    media_root: Path
    endpoint: str = ""
    bucket: str = ""

    @property
    def is_object_store(self) -> bool:
        return bool(self.bucket)

    @property
    def environment(self) -> dict[str, str]:
        """The settings a server or worker process needs to use this store (the media folder comes with
        CLIPPRO_DATA_DIR)."""
        if not self.is_object_store:
            return {}
        return {
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_S3_REGION_NAME": S3_REGION,
            "AWS_S3_ADDRESSING_STYLE": "path",
            **S3_CREDENTIALS,
        }

    def names(self) -> list[str]:
        """Every stored file's name, as the database holds it."""
        if not self.is_object_store:
            return sorted(path.relative_to(self.media_root).as_posix() for path in files_under(self.media_root))
        listing = s3_client(self.endpoint).list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))


def use_object_store(settings, monkeypatch, media_root: Path, endpoint: str) -> MediaStore:
    """Points the default storage of this process at a new, empty bucket, configured as settings.py does."""
    bucket = f"clippro-{uuid.uuid4().hex[:20]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)  # boto3 reads the keys from the environment, as in production
    options = object_store_options(bucket=bucket, endpoint_url=endpoint, region=S3_REGION, addressing_style="path")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    return MediaStore(media_root, endpoint, bucket)


@pytest.fixture(params=["file_system", "object_store"])
def media_store(request, settings, monkeypatch, isolated_files) -> MediaStore:
    """Runs a test once with photos on the file system and once in a real S3 server."""
    media_root = isolated_files / "media"
    if request.param == "file_system":
        return MediaStore(media_root)
    return use_object_store(settings, monkeypatch, media_root, request.getfixturevalue("s3_endpoint"))


@pytest.fixture
def object_store(settings, monkeypatch, isolated_files, s3_endpoint) -> MediaStore:
    return use_object_store(settings, monkeypatch, isolated_files / "media", s3_endpoint)


@pytest.fixture
def media_root(isolated_files) -> Path:
    return isolated_files / "media"


@pytest.fixture
def fixture_photos() -> list[Path]:
    return sorted(PHOTO_FIXTURES.glob("*.jpg"))
