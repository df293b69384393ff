"""Captioning queued photos in batches: what a worker does.

A worker claims up to CAPTION_BATCH_SIZE photos at once by writing a fresh claim token and the time into
them (`processing`), embeds them all with CLIP and captions them all in one engine call, then writes each
caption only if its claim still holds. While the batch runs, a heartbeat renews the claim every
CAPTION_HEARTBEAT_SECONDS. A worker killed mid-batch stops renewing: once its claim is older than
CAPTION_LEASE_SECONDS its photos are claimable again (the sweep, every minute, queues the work), so nothing is
lost and little time is, and a late writer whose claim was taken over writes nothing. Every claim counts an
attempt; after CAPTION_MAX_ATTEMPTS the photo fails with the last error, and the retry button starts over.
The database allows one current caption per photo whatever happens.
"""

import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from captioning import engine
from captioning.models import Caption, ModelVersion, Photo
from captioning.selectors import model_version_active

logger = logging.getLogger(__name__)

CAPTION_TASK = "captioning.tasks.caption_pending_photos"
DECODING_LIMITS = {
    "strategy": ("beam", "greedy", "sample"),
    "beam_size": (1, 10),
    "max_length": (5, 80),
    "temperature": (0.1, 2.0),
    "top_p": (0.05, 1.0),
    "top_k": (1, 1000),
    "length_normalization": (0.0, 2.0),
    "seed": (0, 2**31 - 1),
}


@dataclass
class BatchOutcome:
    claimed: int = 0
    captioned: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0  # claims another worker took over (ours had expired)
    messages: list[str] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)  # photo ids already written (captioned or failed)


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    photos: list[Photo]


class _GroupFailed(Exception):
    def __init__(self, message: str, retriable: bool):
        super().__init__(message)
        self.retriable = retriable


def caption_queue_work() -> None:
    """Asks the worker cluster for a captioning run. Harmless when there is nothing to do; if the broker is
    down the periodic sweep (captioning.tasks.sweep) starts the run instead."""
    from django_q.tasks import async_task

    try:
        async_task(CAPTION_TASK, group="captioning")
    except Exception:
        logger.exception("could not queue a captioning task; the periodic sweep will pick the photos up")


def decoding_settings(requested: dict | None = None) -> dict:
    """The decoding settings a caption is written with: the defaults, overridden by `requested` (checked)."""
    values = {"strategy": "beam", "beam_size": settings.CAPTION_BEAM_SIZE, "max_length": settings.CAPTION_MAX_LENGTH}
    for key, value in (requested or {}).items():
        if key not in DECODING_LIMITS:
            raise ValueError(f"unknown decoding setting {key!r}")
        limits = DECODING_LIMITS[key]
        if key == "strategy":
            if value not in limits:
                raise ValueError(f"strategy must be one of {', '.join(limits)}")
        elif value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not limits[0] <= value <= limits[1]
        ):
            raise ValueError(f"{key} must be a number from {limits[0]} to {limits[1]}")
        values[key] = value
    if values["strategy"] != "beam":
        values.pop("beam_size", None)
    return {key: value for key, value in values.items() if value is not None}


def photo_claim_batch(*, limit: int) -> Claim:
    """Claims up to `limit` queued photos, and abandoned ones (a claim older than the lease)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CAPTION_LEASE_SECONDS)
    abandoned = Q(status=Photo.Status.PROCESSING, claimed_at__lt=stale_before)
    Photo.objects.filter(abandoned, attempts__gte=settings.CAPTION_MAX_ATTEMPTS).update(
        status=Photo.Status.FAILED,
        claim_token=None,
        claimed_at=None,
        error_message=(
            f"The worker stopped {settings.CAPTION_MAX_ATTEMPTS} times while captioning this photo (killed, out "
            "of memory, or over the task timeout). Retry it, or look at the worker's log."
        ),
        updated_at=now,
    )
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimable = (Q(status=Photo.Status.QUEUED) & due) | abandoned
    token = uuid.uuid4()
    with transaction.atomic():
        candidates = Photo.objects.filter(claimable).order_by("created_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            # Concurrent workers on PostgreSQL each take different photos instead of waiting on each other.
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if ids:
            # The condition is checked again by the UPDATE itself: a photo another worker claimed meanwhile
            # (SQLite has no row locks) no longer matches and stays theirs.
            Photo.objects.filter(claimable, pk__in=ids).update(
                status=Photo.Status.PROCESSING,
                claim_token=token,
                claimed_at=now,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
    photos = list(
        Photo.objects.filter(claim_token=token).select_related("requested_model").order_by("created_at", "id")
    )
    return Claim(token, photos)


def photo_claim_renew(*, token: uuid.UUID) -> int:
    """Renews a claim on the photos it still holds (none once they are written or taken over)."""
    return Photo.objects.filter(claim_token=token, status=Photo.Status.PROCESSING).update(claimed_at=timezone.now())


@contextmanager
def _claim_kept_alive(token: uuid.UUID) -> Iterator[None]:
    """Renews the claim from a thread while the block runs: loading a model and captioning a whole batch in
    one engine call can take longer than the lease, and only a dead worker's claim may expire."""
    if connection.in_atomic_block:
        # Inside a caller's transaction (a test's) the claim is invisible to other connections until it commits,
        # and another connection renewing it would wait on our own row locks until the end: a deadlock.
        yield
        return
    stop = threading.Event()
    heartbeat = threading.Thread(target=_renew_claim_until, args=(token, stop), name="claim-heartbeat", daemon=True)
    heartbeat.start()
    try:
        yield
    finally:
        stop.set()
        heartbeat.join()


def _renew_claim_until(token: uuid.UUID, stop: threading.Event) -> None:
    try:
        while not stop.wait(settings.CAPTION_HEARTBEAT_SECONDS):
            try:
                photo_claim_renew(token=token)
            except DatabaseError:
                # A busy database may let one renewal fail; the lease leaves room for the next ones.
                logger.exception("could not renew captioning claim %s; trying again", token)
    finally:
        connection.close()  # this thread's own connection


def photo_caption_batch(*, limit: int | None = None) -> BatchOutcome:
    """Claims a batch and captions it. Returns what happened; never raises for a photo's failure."""
    claim = photo_claim_batch(limit=limit or settings.CAPTION_BATCH_SIZE)
    outcome = BatchOutcome(claimed=len(claim.photos))
    if not claim.photos:
        return outcome
    with _claim_kept_alive(claim.token):
        _caption_claimed(claim, outcome)
    logger.info(
        "captioning batch: %d claimed, %d captioned, %d to retry, %d failed, %d taken over",
        outcome.claimed,
        outcome.captioned,
        outcome.retrying,
        outcome.failed,
        outcome.lost,
    )
    return outcome


def _caption_claimed(claim: Claim, outcome: BatchOutcome) -> None:
    active = model_version_active()
    groups: dict[tuple[int, str], list[Photo]] = defaultdict(list)
    models: dict[int, ModelVersion] = {}
    for photo in claim.photos:
        model_version = photo.requested_model or active
        if model_version is None:
            _finish_failed(photo, claim.token, engine.no_active_model_message(), retriable=False, outcome=outcome)
            continue
        try:
            decoding = decoding_settings(photo.requested_decoding)
        except ValueError as error:
            _finish_failed(photo, claim.token, f"Invalid decoding settings: {error}", retriable=False, outcome=outcome)
            continue
        models[model_version.pk] = model_version
        groups[(model_version.pk, _decoding_key(decoding))].append(photo)
    for (model_pk, decoding_key), photos in groups.items():
        _caption_group(claim.token, models[model_pk], _decoding_from_key(decoding_key), photos, outcome)


def caption_pending_photos(*, time_budget_seconds: float | None = None) -> BatchOutcome:
    """Batch after batch until the queue is empty or the time budget (half the task timeout) is spent;
    then one more task is queued for what is left."""
    budget = time_budget_seconds if time_budget_seconds is not None else settings.CAPTION_TASK_TIMEOUT_SECONDS / 2
    started = time.monotonic()
    total = BatchOutcome()
    while True:
        outcome = photo_caption_batch()
        for name in ("claimed", "captioned", "retrying", "failed", "lost"):
            setattr(total, name, getattr(total, name) + getattr(outcome, name))
        if outcome.claimed == 0:
            return total
        if time.monotonic() - started > budget:
            caption_queue_work()
            return total


def caption_work_waiting() -> bool:
    """Photos waiting for a worker: queued and due, or claimed by one that seems to have died."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.CAPTION_LEASE_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return Photo.objects.filter(
        (Q(status=Photo.Status.QUEUED) & due) | Q(status=Photo.Status.PROCESSING, claimed_at__lt=stale_before)
    ).exists()


def _decoding_key(decoding: dict) -> str:
    return json.dumps(decoding, sort_keys=True)


def _decoding_from_key(key: str) -> dict:
    return json.loads(key)


def _caption_group(
    token: uuid.UUID, model_version: ModelVersion, decoding: dict, photos: list[Photo], outcome: BatchOutcome
) -> None:
    """One model, one decoding: embed every photo that needs it, then caption them all in one call."""
    from mlcore import DecodingOptions, MlcoreError

    try:
        try:
            captioner = engine.captioner_for(model_version)
        except engine.CaptionModelMissing as error:
            raise _GroupFailed(str(error), retriable=False) from error
        except MlcoreError as error:
            raise _GroupFailed(
                f"The model {model_version.name!r} cannot be loaded: {error}", retriable=False
            ) from error
        try:
            options = DecodingOptions.from_dict(decoding)
        except ValueError as error:
            raise _GroupFailed(f"Invalid decoding settings: {error}", retriable=False) from error
        vectors = _embeddings(captioner, model_version, token, photos, outcome)
        ready = [photo for photo in photos if photo.pk in vectors]
        if not ready:
            return
        import torch

        try:
            embeddings = torch.stack([vectors[photo.pk] for photo in ready])
            results = captioner.caption_embeddings(embeddings, options)
            familiarities = captioner.familiarity(embeddings)  # how close each photo is to the training images
        except MlcoreError as error:
            raise _GroupFailed(f"The model could not caption this photo: {error}", retriable=False) from error
        except Exception as error:
            logger.exception("captioning failed for %d photos", len(ready))
            raise _GroupFailed(f"Captioning failed: {error.__class__.__name__}: {error}", retriable=True) from error
    except _GroupFailed as failure:
        for photo in photos:
            if photo.pk not in outcome.finished:
                _finish_failed(photo, token, str(failure), retriable=failure.retriable, outcome=outcome)
        return
    clip_scores = _clip_scores(captioner, [vectors[photo.pk] for photo in ready], [result.text for result in results])
    for photo, result, clip_score, familiarity in zip(ready, results, clip_scores, familiarities, strict=True):
        _finish_captioned(
            photo, token, model_version, options.to_dict(), result, vectors[photo.pk], clip_score, familiarity, outcome
        )


def _clip_scores(captioner, vectors: list, texts: list[str]) -> list[float | None]:
    """CLIPScore of each new caption against its photo, in the model's own CLIP (one text-tower call for the
    batch): the review queue shows the worst first. A caption is still written when scoring fails."""
    import torch

    from mlcore.clipscore import caption_clip_scores

    try:
        return list(caption_clip_scores(captioner, torch.stack(vectors), texts).per_item)
    except Exception:
        logger.exception("could not compute the CLIPScore of %d captions; they are stored without it", len(texts))
        return [None] * len(texts)


def _embeddings(captioner, model_version: ModelVersion, token, photos: list[Photo], outcome: BatchOutcome) -> dict:
    """photo pk -> CLIP embedding: stored ones when the same model made them, the rest embedded in one call.
    A photo whose file cannot be read fails alone."""
    import numpy as np
    import torch

    from mlcore import ImageDecodeError, MlcoreError

    vectors = {}
    to_embed: list[tuple[Photo, object]] = []
    for photo in photos:
        if photo.embedding is not None and photo.embedding_model_id == model_version.pk:
            vectors[photo.pk] = torch.from_numpy(np.frombuffer(bytes(photo.embedding), dtype="<f4").copy())
            continue
        try:
            to_embed.append((photo, _open_photo(photo)))
        except (ImageDecodeError, OSError) as error:
            _finish_failed(photo, token, f"The stored photo cannot be read: {error}", retriable=False, outcome=outcome)
    if to_embed:
        try:
            embedded = captioner.embed([image for _photo, image in to_embed])
        except MlcoreError as error:
            raise _GroupFailed(f"The model's CLIP cannot be used: {error}", retriable=False) from error
        except Exception as error:
            logger.exception("embedding failed for %d photos", len(to_embed))
            raise _GroupFailed(f"Embedding failed: {error.__class__.__name__}: {error}", retriable=True) from error
        for (photo, _image), vector in zip(to_embed, embedded, strict=True):
            vectors[photo.pk] = vector.float()
    return vectors


def _open_photo(photo: Photo):
    from PIL import Image

    from mlcore import prepare_image

    with photo.original.open("rb") as file, Image.open(file) as image:
        image.load()
        return prepare_image(image)


def _finish_captioned(
    photo,
    token,
    model_version,
    decoding: dict,
    result,
    vector,
    clip_score: float | None,
    familiarity,
    outcome: BatchOutcome,
) -> None:
    now = timezone.now()
    embedding = vector.numpy().astype("<f4").tobytes()
    try:
        with transaction.atomic():
            # Only while our claim holds; this UPDATE also locks the row until the caption is written.
            held = Photo.objects.filter(pk=photo.pk, claim_token=token, status=Photo.Status.PROCESSING).update(
                status=Photo.Status.CAPTIONED,
                error_message="",
                claim_token=None,
                claimed_at=None,
                embedding=embedding,
                embedding_model=model_version,
                requested_model=None,
                requested_decoding={},
                updated_at=now,
            )
            outcome.finished.add(photo.pk)
            if not held:
                outcome.lost += 1
                return
            Caption.objects.filter(photo_id=photo.pk, is_current=True).update(is_current=False)
            Caption.objects.create(
                photo_id=photo.pk,
                text=result.text,
                source=Caption.Source.MODEL,
                model_version=model_version,
                decoding=decoding,
                score=float(result.score),
                clip_score=clip_score,
                familiarity=familiarity.value,
                confident=familiarity.confident,
                is_current=True,
            )
    except IntegrityError:
        # Someone else made a caption current at the same instant; theirs stands.
        logger.warning("photo %s got a current caption from elsewhere while captioning; ours was dropped", photo.pk)
        outcome.lost += 1
        return
    outcome.captioned += 1


def _finish_failed(photo: Photo, token, message: str, *, retriable: bool, outcome: BatchOutcome) -> None:
    retry = retriable and photo.attempts < settings.CAPTION_MAX_ATTEMPTS
    now = timezone.now()
    if retry:
        message = f"Attempt {photo.attempts} of {settings.CAPTION_MAX_ATTEMPTS} failed: {message} It will be retried."
    outcome.finished.add(photo.pk)
    held = Photo.objects.filter(pk=photo.pk, claim_token=token, status=Photo.Status.PROCESSING).update(
        status=Photo.Status.QUEUED if retry else Photo.Status.FAILED,
        error_message=message,
        claim_token=None,
        claimed_at=None,
        # A retry waits a little longer each time instead of failing again at once.
        next_attempt_at=now + timedelta(seconds=settings.CAPTION_RETRY_DELAY_SECONDS * photo.attempts)
        if retry
        else None,
        updated_at=now,
    )
    if not held:
        outcome.lost += 1
    elif retry:
        outcome.retrying += 1
    else:
        outcome.failed += 1
    outcome.messages.append(message)
