"""The settings each environment gets, read in a fresh interpreter (settings are read once, at import)."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHOW = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({'debug': settings.DEBUG, 'key': settings.SECRET_KEY, 'hosts': settings.ALLOWED_HOSTS}))"
)


def settings_with(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {name: value for name, value in os.environ.items() if name not in {"CLIPPRO_ENV", "SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=REPO_ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "clippro_site.settings", "CLIPPRO_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_by_default_debug_is_off_and_a_key_is_made_once_and_kept(tmp_path):
    first = json.loads(settings_with(tmp_path).stdout)
    second = json.loads(settings_with(tmp_path).stdout)
    assert first["debug"] is False
    assert "127.0.0.1" in first["hosts"] and "localhost" in first["hosts"]
    assert len(first["key"]) >= 50 and first["key"] == second["key"]
    key_file = tmp_path / "secret_key"
    assert key_file.read_text().strip() == first["key"]
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_development_turns_debug_on(tmp_path):
    assert json.loads(settings_with(tmp_path, CLIPPRO_ENV="development").stdout)["debug"] is True
    assert not (tmp_path / "secret_key").exists()


def test_production_requires_a_secret_key(tmp_path):
    result = settings_with(tmp_path, CLIPPRO_ENV="production", ALLOWED_HOSTS="photos.example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_signed_media_urls_need_an_object_store(tmp_path):
    result = settings_with(tmp_path, MEDIA_SIGNED_URL_SECONDS="300")
    assert result.returncode != 0
    assert "MEDIA_SIGNED_URL_SECONDS needs an object store" in result.stderr
