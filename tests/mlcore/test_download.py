"""mlcore.download against a real HTTP server on 127.0.0.1: resuming with Range, checking sha256, failing
fast when offline."""

import hashlib
import io
import os
import time

import pytest
import requests
from tqdm import tqdm

from mlcore.download import CHUNK_BYTES, DownloadError, DownloadPolicy, download_file, file_record
from tests.commands.conftest import closed_port_url
from tests.file_server import serve_files

QUICK = DownloadPolicy(timeout_seconds=5, retries=0, backoff_seconds=0.01)
CONTENT = os.urandom(300_000)
SHA256 = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "weights.pt").write_bytes(CONTENT)
    with serve_files(root) as server:
        yield server


@pytest.fixture
def server(site):
    site.reset()
    return site


def fetch(server, destination, policy=QUICK, **options):
    with requests.Session() as session:
        download_file(session, server.url("weights.pt"), destination, policy, resume=True, **options)


def test_an_interrupted_download_keeps_its_part_and_the_next_run_resumes_with_range(server, tmp_path):
    destination = tmp_path / "weights.pt"
    server.drop_after["/weights.pt"] = 100_000

    with pytest.raises(DownloadError, match="connection failed after 1 attempts"):
        fetch(server, destination)
    part = tmp_path / "weights.pt.part"
    assert not destination.exists()
    kept = part.stat().st_size
    assert 0 < kept < len(CONTENT)
    assert part.read_bytes() == CONTENT[:kept]

    fetch(server, destination, sha256=SHA256)

    assert destination.read_bytes() == CONTENT
    assert not part.exists()
    assert server.requests[-1] == ("/weights.pt", f"bytes={kept}-")


def test_a_connection_dropped_mid_file_is_resumed_within_the_same_run(server, tmp_path):
    server.drop_after["/weights.pt"] = 150_000  # bytes reach the part a chunk (64 KiB) at a time
    bar = tqdm(file=io.StringIO())

    fetch(
        server,
        tmp_path / "weights.pt",
        DownloadPolicy(timeout_seconds=5, retries=2, backoff_seconds=0.01),
        progress_bar=bar,
    )

    assert (tmp_path / "weights.pt").read_bytes() == CONTENT
    assert [header for _, header in server.requests] == [None, f"bytes={2 * CHUNK_BYTES}-"]
    assert bar.n == bar.total == len(CONTENT)


def test_a_server_that_ignores_range_sends_the_whole_file_and_the_part_is_replaced(server, tmp_path):
    (tmp_path / "weights.pt.part").write_bytes(b"stale bytes from another file")
    server.honour_range = False

    fetch(server, tmp_path / "weights.pt", sha256=SHA256)

    assert (tmp_path / "weights.pt").read_bytes() == CONTENT


def test_a_part_longer_than_the_file_is_discarded_and_downloaded_again(server, tmp_path):
    (tmp_path / "weights.pt.part").write_bytes(b"x" * (len(CONTENT) + 10))

    fetch(server, tmp_path / "weights.pt", DownloadPolicy(timeout_seconds=5, retries=1, backoff_seconds=0.01))

    assert (tmp_path / "weights.pt").read_bytes() == CONTENT
    assert [header for _, header in server.requests] == [f"bytes={len(CONTENT) + 10}-", None]


def test_content_with_another_sha256_is_refused_and_deleted(server, tmp_path):
    with pytest.raises(DownloadError, match=f"sha256 is {SHA256}, expected 00ff"):
        fetch(server, tmp_path / "weights.pt", sha256="00ff")
    assert not list(tmp_path.iterdir())


def test_an_unreachable_host_fails_at_once_when_told_not_to_retry_it(tmp_path):
    url = f"{closed_port_url()}/weights.pt"
    policy = DownloadPolicy(timeout_seconds=5, retries=4, backoff_seconds=5, retry_unreachable=False)
    started = time.monotonic()
    with pytest.raises(DownloadError, match="connection refused") as raised, requests.Session() as session:
        download_file(session, url, tmp_path / "weights.pt", policy, resume=True)
    assert time.monotonic() - started < 2
    assert url in str(raised.value)


def test_file_record_gives_size_and_sha256(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(CONTENT)
    assert file_record(path, "http://example/weights.pt").to_dict() == {
        "name": "weights.pt",
        "url": "http://example/weights.pt",
        "size": len(CONTENT),
        "sha256": SHA256,
    }
