"""Reading settings from the environment, in one place."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float | None) -> float | None:
    return _env_number(name, default, float, "a number")


def _env_number(name: str, default, kind: type, described: str):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not {described}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def secret_key_from_file(path: Path) -> str:
    """The secret key kept in `path`, made there on first use (readable by this user only), so a self-hosted
    site keeps its sessions across restarts without anyone choosing a key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            # A link, not a rename: the web server and the worker start together, and the first key written wins.
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it (a new key is made) or set SECRET_KEY")
    return key


def object_store_options(
    *, bucket: str, endpoint_url: str = "", region: str = "", prefix: str = "", addressing_style: str = ""
) -> dict:
    """django-storages' S3Storage options for the media bucket: private objects, names kept as given (every
    photo's folder is a fresh uuid, so nothing is overwritten; a name that stays the same lets the media move
    between stores), files read into memory, never spooled to a local disk."""
    return {
        "bucket_name": bucket,
        "endpoint_url": endpoint_url or None,  # None: AWS S3
        "region_name": region or None,
        "location": prefix,
        "addressing_style": addressing_style or None,  # "path" for stores without bucket subdomains
        "default_acl": None,  # the bucket's own (private): nothing is public
        "querystring_auth": True,
        "file_overwrite": True,
        "max_memory_size": 0,
        "signature_version": "s3v4",
    }
