"""These tests need PostgreSQL with pgvector: tests/captioning/test_search_pgvector.py starts one (pgserver) and
runs them there, with CLIPPRO_PGVECTOR_TESTS set. Anywhere else they are not collected."""

import os

collect_ignore_glob = [] if os.environ.get("CLIPPRO_PGVECTOR_TESTS") else ["test_*.py"]
