"""Image search inside PostgreSQL 16 with pgvector, on a server this test starts (the PyPI package pgserver
ships both; Debian's PostgreSQL has no pgvector). The search tests run again there, with pgvector chosen by
itself, and tests/captioning/pgvector/ checks the vector table and its HNSW index. They run in a pytest of
their own because the rest of the suite keeps its database (SQLite, or the system PostgreSQL in CI)."""

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pgserver
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PGVECTOR_TESTS = ["tests/captioning/pgvector", "tests/captioning/test_search.py"]


@pytest.fixture(scope="session")
def pgvector_database_url(tmp_path_factory) -> Iterator[str]:
    """A PostgreSQL 16.2 server with pgvector 0.6.2, on a Unix socket in its own data folder."""
    server = pgserver.get_server(tmp_path_factory.mktemp("pgvector-server"), cleanup_mode="stop")
    socket_folder = parse_qs(urlsplit(server.get_uri()).query)["host"][0]
    try:
        yield f"postgres://postgres@{quote(socket_folder, safe='')}/clippro_search"
    finally:
        server.cleanup()


def test_search_runs_inside_postgresql_with_pgvector(pgvector_database_url):
    env = {**os.environ, "DATABASE_URL": pgvector_database_url, "CLIPPRO_PGVECTOR_TESTS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PGVECTOR_TESTS],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout[-6000:] + result.stderr[-3000:]
    assert result.returncode == 0, output
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, output
