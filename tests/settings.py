"""The settings the test suite runs on: the project's own, read in the `test` environment. pytest-django reads
the settings before any conftest.py runs, so the environment is chosen here, before they are imported."""

import os

os.environ.setdefault("CLIPPRO_ENV", "test")

from clippro_site.settings import *  # noqa: F403
