"""Installing a published pretrained captioner: the catalogue (mlcore/catalogue.json) names, for each
model, its weights file and where it is published, its CLIP and its GPT-2 tokenizer. `install_pretrained`
downloads what is missing (resumably, with progress bars, sizes and sha256 recorded) and converts the
weights into a checkpoint directory with `import_clipcap`.

Every address can be redirected by environment, for a mirror or a proxy (requests honours HTTPS_PROXY):
    CLIPCAP_WEIGHTS_BASE_URL    a folder URL holding the weights files under their catalogue names
    HF_ENDPOINT                 the Hugging Face hub (hub copies of weights, GPT-2's files, CLIP's weights)
    GOOGLE_DRIVE_DOWNLOAD_URL   Google Drive's download endpoint
"""

import json
import os
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import requests
from tqdm import tqdm

from mlcore.checkpoint import import_clipcap
from mlcore.download import DownloadError, DownloadPolicy, FileRecord, download_file, file_record, unreachable_reason
from mlcore.errors import MlcoreError, ModelUnavailableError

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
WEIGHTS_BASE_URL_ENV = "CLIPCAP_WEIGHTS_BASE_URL"
HUB_ENDPOINT_ENV = "HF_ENDPOINT"
GOOGLE_DRIVE_ENV = "GOOGLE_DRIVE_DOWNLOAD_URL"
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_GOOGLE_DRIVE_URL = "https://drive.usercontent.google.com/download"
PART_SOURCE_SUFFIX = ".part.source"  # beside a `.part`: the URL it is being downloaded from
# Offline must fail within seconds: a refused or unresolvable host is not retried. Dropped transfers are.
INSTALL_POLICY = DownloadPolicy(timeout_seconds=30, retries=4, backoff_seconds=1, retry_unreachable=False)


class UnknownModelError(MlcoreError):
    """A name that is not in the catalogue."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file is published: a hub repository, a Google Drive file, or a plain URL."""

    hub_repo: str = ""
    google_drive_id: str = ""
    url: str = ""
    note: str = ""


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    description: str
    trained_on: str
    weights_file: str
    weights_sha256: str | None
    weights_sources: tuple[WeightsSource, ...]
    clip_model: str
    gpt2_repo: str
    gpt2_revision: str
    gpt2_files: tuple[str, ...]

    @classmethod
    def from_dict(cls, name: str, values: dict) -> "CatalogueEntry":
        weights, gpt2 = values["weights"], values["gpt2"]
        return cls(
            name=name,
            description=values["description"],
            trained_on=values["trained_on"],
            weights_file=weights["file_name"],
            weights_sha256=weights.get("sha256"),
            weights_sources=tuple(WeightsSource(**source) for source in weights["sources"]),
            clip_model=values["clip_model"],
            gpt2_repo=gpt2["hub_repo"],
            gpt2_revision=gpt2.get("revision", "main"),
            gpt2_files=tuple(gpt2["files"]),
        )


def read_catalogue(path: Path = CATALOGUE_PATH) -> dict[str, CatalogueEntry]:
    return {name: CatalogueEntry.from_dict(name, values) for name, values in json.loads(path.read_text()).items()}


def catalogue_entry(name: str, path: Path = CATALOGUE_PATH) -> CatalogueEntry:
    catalogue = read_catalogue(path)
    if name not in catalogue:
        raise UnknownModelError(f"no pretrained model {name!r} in the catalogue; known: {', '.join(catalogue)}")
    return catalogue[name]


def hub_url(repo: str, file_name: str, revision: str = "main") -> str:
    endpoint = os.environ.get(HUB_ENDPOINT_ENV) or DEFAULT_HUB_ENDPOINT
    return f"{endpoint.rstrip('/')}/{repo}/resolve/{revision}/{file_name}"


def weights_urls(entry: CatalogueEntry) -> list[str]:
    """The addresses to try in order; a mirror named by CLIPCAP_WEIGHTS_BASE_URL replaces them all."""
    if base := os.environ.get(WEIGHTS_BASE_URL_ENV):
        return [f"{base.rstrip('/')}/{entry.weights_file}"]
    drive = _google_drive_url()
    urls = []
    for source in entry.weights_sources:
        if source.hub_repo:
            urls.append(hub_url(source.hub_repo, entry.weights_file))
        elif source.google_drive_id:
            # confirm=t skips the "too large to scan for viruses" page; _confirmed_drive_url handles it if shown.
            urls.append(f"{drive}?{urlencode({'id': source.google_drive_id, 'export': 'download', 'confirm': 't'})}")
        else:
            urls.append(source.url)
    return urls


def _google_drive_url() -> str:
    return os.environ.get(GOOGLE_DRIVE_ENV) or DEFAULT_GOOGLE_DRIVE_URL


def install_pretrained(
    entry: CatalogueEntry,
    checkpoint_dir: Path,
    downloads_dir: Path,
    *,
    clip_source: str | None = None,
    gpt2_source: Path | None = None,
    progress: bool = True,
    policy: DownloadPolicy = INSTALL_POLICY,
) -> list[FileRecord]:
    """Downloads what is missing into `downloads_dir` and writes the checkpoint. `clip_source` (any CLIP name
    mlcore.encoder accepts) and `gpt2_source` (a local GPT-2 folder) replace the catalogue's. Returns what
    was downloaded or found there: name, URL, size and sha256 of each file."""
    downloads_dir = Path(downloads_dir)
    with requests.Session() as session:
        weights = fetch_weights(entry, downloads_dir, session, policy, progress)
        records = [weights]
        if gpt2_source is None:
            gpt2_records = fetch_gpt2_files(entry, downloads_dir, session, policy, progress)
            records += gpt2_records
            gpt2_source = downloads_dir / _folder_name(entry.gpt2_repo)
    if clip_source is None and (clip_record := ensure_clip_weights(entry.clip_model, policy)) is not None:
        records.append(clip_record)
    import_clipcap(
        downloads_dir / entry.weights_file,
        checkpoint_dir,
        tokenizer_source=gpt2_source,
        clip_model=clip_source or entry.clip_model,
        num_heads=_gpt2_heads(Path(gpt2_source)),
        trained_on=entry.trained_on,
    )
    return records


def fetch_weights(
    entry: CatalogueEntry, downloads_dir: Path, session: requests.Session, policy: DownloadPolicy, progress: bool
) -> FileRecord:
    destination = downloads_dir / entry.weights_file
    urls = weights_urls(entry)
    failures: list[str] = []
    for url in urls:
        if destination.is_file():  # downloaded before, or put there by hand
            break
        _forget_part_from_another_source(destination, url)
        try:
            with tqdm(desc=entry.weights_file, unit="B", unit_scale=True, disable=not progress) as bar:
                from_drive = url.startswith(_google_drive_url() + "?")
                confirmed = _confirmed_drive_url(session, url, policy) if from_drive else url
                download_file(
                    session,
                    confirmed,
                    destination,
                    policy,
                    validate=_not_a_web_page,
                    progress_bar=bar,
                    resume=True,
                    sha256=entry.weights_sha256,
                )
            destination.with_name(destination.name + PART_SOURCE_SUFFIX).unlink(missing_ok=True)
            return file_record(destination, url)
        except DownloadError as error:
            failures.append(str(error))
    if destination.is_file():
        return _checked_record(destination, urls[0], entry.weights_sha256)
    raise ModelUnavailableError(
        f"the weights of {entry.name} ({entry.weights_file}) could not be downloaded: {'; '.join(failures)}. "
        f"Set {WEIGHTS_BASE_URL_ENV} to a mirror holding {entry.weights_file} (or HTTPS_PROXY to a proxy), or "
        f"download it by hand and put it at {destination}; then run the command again (a partial download "
        "there is resumed)"
    )


def _forget_part_from_another_source(destination: Path, url: str) -> None:
    """A `.part` is continued only from the URL that began it: the hub copy and the authors' file need not be
    byte for byte the same, and bytes of one appended to the other would make a corrupt file."""
    partial = destination.with_name(destination.name + ".part")
    source_note = destination.with_name(destination.name + PART_SOURCE_SUFFIX)
    if partial.is_file() and (not source_note.is_file() or source_note.read_text() != url):
        partial.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    source_note.write_text(url)


def _checked_record(path: Path, url: str, expected_sha256: str | None) -> FileRecord:
    record = file_record(path, url)
    if expected_sha256 and record.sha256 != expected_sha256.lower():
        raise ModelUnavailableError(
            f"{path} has sha256 {record.sha256}, not the published {expected_sha256}: delete it to download it again"
        )
    return record


def fetch_gpt2_files(
    entry: CatalogueEntry, downloads_dir: Path, session: requests.Session, policy: DownloadPolicy, progress: bool
) -> list[FileRecord]:
    folder = downloads_dir / _folder_name(entry.gpt2_repo)
    records = []
    for file_name in entry.gpt2_files:
        url = hub_url(entry.gpt2_repo, file_name, entry.gpt2_revision)
        destination = folder / file_name
        if not destination.is_file():
            try:
                with tqdm(
                    desc=f"{entry.gpt2_repo}/{file_name}", unit="B", unit_scale=True, disable=not progress
                ) as bar:
                    download_file(session, url, destination, policy, progress_bar=bar, resume=True)
            except DownloadError as error:
                raise ModelUnavailableError(
                    f"GPT-2's {file_name} could not be downloaded: {error}. Set {HUB_ENDPOINT_ENV} to a reachable "
                    f"Hugging Face mirror, or put {', '.join(entry.gpt2_files)} of {entry.gpt2_repo} in {folder}/ "
                    "(or pass a local GPT-2 folder with --gpt2-source)"
                ) from None
        records.append(file_record(destination, url))
    return records


def ensure_clip_weights(clip_model: str, policy: DownloadPolicy) -> FileRecord | None:
    """CLIP's OpenAI weights in open_clip's cache (CLIPPRO_CLIP_CACHE, else Hugging Face's), where captioning
    loads them from. Other spellings (hub ids, local folders) are loaded by open_clip itself: None."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    from mlcore.encoder import resolve_clip_name

    source = resolve_clip_name(clip_model)
    if source.pretrained is None:
        return None
    config = open_clip.get_pretrained_cfg(source.open_clip_model, source.pretrained)
    file_name = "open_clip_model.safetensors"  # open_clip tries it before the .bin
    repo = config.get("hf_hub", "").rstrip("/")
    cache_dir = os.environ.get("CLIPPRO_CLIP_CACHE") or None
    url = hub_url(repo, file_name)
    cached = try_to_load_from_cache(repo, file_name, cache_dir=cache_dir)
    if isinstance(cached, str):
        return file_record(Path(cached), url)
    # huggingface_hub retries an unreachable host for over a minute; one quick request tells offline first.
    advice = (
        f"Set {HUB_ENDPOINT_ENV} to a reachable Hugging Face mirror, copy a Hugging Face cache holding them into "
        "CLIPPRO_CLIP_CACHE, or pass --clip-source with a local CLIP folder (open_clip_config.json and "
        "open_clip_model.safetensors)"
    )
    try:
        requests.head(url, timeout=policy.timeout_seconds, allow_redirects=False)
    except requests.RequestException as error:
        raise ModelUnavailableError(
            f"CLIP {clip_model} weights could not be downloaded from {url}: {unreachable_reason(error) or error}. "
            + advice
        ) from None
    try:
        path = open_clip.pretrained.download_pretrained(config, cache_dir=cache_dir)
    except (OSError, RuntimeError, ValueError) as error:  # huggingface_hub's errors derive from these
        raise ModelUnavailableError(f"CLIP {clip_model} weights could not be downloaded: {error}. {advice}") from None
    return file_record(Path(path), url)


def _folder_name(repo: str) -> str:
    return repo.replace("/", "--")


def _gpt2_heads(gpt2_dir: Path) -> int | None:
    """The head count is not visible in a state dict; GPT-2's config.json says it."""
    config_path = gpt2_dir / "config.json"
    return json.loads(config_path.read_text()).get("n_head") if config_path.is_file() else None


def _not_a_web_page(path: Path) -> str | None:
    with path.open("rb") as handle:
        start = handle.read(512).lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "the server sent a web page instead of the file (a quota or sign-in page?)"
    return None


class _DownloadFormParser(HTMLParser):
    """Google Drive's confirmation page: a form whose action and hidden fields make the download URL."""

    def __init__(self):
        super().__init__()
        self.action = ""
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.action = values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")


def _confirmed_drive_url(session: requests.Session, url: str, policy: DownloadPolicy) -> str:
    """The URL itself when it serves the file; for a large file Drive first answers with a page whose form
    confirms the download, and that form's URL is returned."""
    try:
        with session.get(url, stream=True, timeout=policy.timeout_seconds) as response:
            if not response.headers.get("Content-Type", "").startswith("text/html"):
                return url
            page = response.text
    except requests.RequestException as error:
        raise DownloadError(url, unreachable_reason(error) or f"{type(error).__name__}: {error}") from None
    form = _DownloadFormParser()
    form.feed(page)
    if not form.action or not form.fields:
        raise DownloadError(url, "Google Drive answered with a page that has no download form (quota exceeded?)")
    return f"{form.action}?{urlencode(form.fields)}"
