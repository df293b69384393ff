"""Captioning queued photos in batches: what a worker does (captioning.jobs writes each photo's state).

A worker claims up to CAPTION_BATCH_SIZE photos at once, embeds them all with CLIP and captions them all in one
engine call, then finishes each photo: its caption is stored only if the claim still holds. While the batch
runs, a heartbeat renews the claim every CAPTION_HEARTBEAT_SECONDS. A worker killed mid-batch stops renewing:
once its claim is older than CAPTION_LEASE_SECONDS its photos are claimable again (the sweep, every minute,
queues the work), so nothing is lost and little time is, and a late writer whose claim was taken over writes
nothing. Every claim counts an attempt; after CAPTION_MAX_ATTEMPTS the photo fails with the last error, and the
retry button starts over. The database allows one current caption per photo whatever happens.
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
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connection

from captioning import engine, jobs
from captioning.decoding import decoding_settings
from captioning.models import ModelVersion, Photo, embedding_from_bytes, embedding_to_bytes
from captioning.selectors import model_version_active

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from mlcore import Captioner

logger = logging.getLogger(__name__)


@dataclass
class BatchOutcome:
    claimed: int = 0
    captioned: int = 0
    retrying: int = 0
    failed: int = 0
    lost: int = 0  # photos whose claim no longer held when they were finished (taken over, or re-queued)
    messages: list[str] = field(default_factory=list)
    finished: set[int] = field(default_factory=set)  # photo ids already written (captioned or failed)

    def count(self, finished: jobs.Finished) -> None:
        name = finished.value
        setattr(self, name, getattr(self, name) + 1)


class _GroupFailed(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


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
                jobs.renew_claim(token=token)
            except DatabaseError:
                # A busy database may let one renewal fail; the lease leaves room for the next ones.
                logger.exception("could not renew captioning claim %s; trying again", token)
    finally:
        connection.close()  # this thread's own connection


def photo_caption_batch(*, limit: int | None = None) -> BatchOutcome:
    """Claims a batch and captions it. Returns what happened; never raises for a photo's failure."""
    claim = jobs.claim_batch(limit=limit or settings.CAPTION_BATCH_SIZE)
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


def _caption_claimed(claim: jobs.Claim, outcome: BatchOutcome) -> None:
    active = model_version_active()
    groups: dict[tuple[int, str], list[Photo]] = defaultdict(list)
    models: dict[int, ModelVersion] = {}
    for photo in claim.photos:
        model_version = photo.requested_model or active
        if model_version is None:
            _fail(photo, claim, Photo.FailureKind.NO_MODEL, engine.no_active_model_message(), outcome)
            continue
        try:
            decoding = decoding_settings(photo.requested_decoding)
        except ValueError as error:
            _fail(photo, claim, Photo.FailureKind.BAD_SETTINGS, f"Invalid decoding settings: {error}", outcome)
            continue
        models[model_version.pk] = model_version
        groups[(model_version.pk, _decoding_key(decoding))].append(photo)
    for (model_pk, decoding_key), photos in groups.items():
        _caption_group(claim, models[model_pk], _decoding_from_key(decoding_key), photos, outcome)


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
            jobs.request_worker_run()
            return total


def _decoding_key(decoding: dict) -> str:
    return json.dumps(decoding, sort_keys=True)


def _decoding_from_key(key: str) -> dict:
    return json.loads(key)


def _caption_group(
    claim: jobs.Claim, model_version: ModelVersion, decoding: dict, photos: list[Photo], outcome: BatchOutcome
) -> None:
    """One model, one decoding: embed every photo that needs it, then caption them all in one call."""
    from mlcore import DecodingOptions, MlcoreError

    unusable = Photo.FailureKind.MODEL_UNUSABLE
    try:
        try:
            captioner = engine.captioner_for(model_version)
        except engine.CaptionModelMissing as error:
            raise _GroupFailed(unusable, str(error)) from error
        except MlcoreError as error:
            raise _GroupFailed(unusable, f"The model {model_version.name!r} cannot be loaded: {error}") from error
        try:
            options = DecodingOptions.from_dict(decoding)
        except ValueError as error:
            raise _GroupFailed(Photo.FailureKind.BAD_SETTINGS, f"Invalid decoding settings: {error}") from error
        vectors = _embeddings(captioner, model_version, claim, photos, outcome)
        ready = [photo for photo in photos if photo.pk in vectors]
        if not ready:
            return
        import torch

        try:
            embeddings = torch.stack([vectors[photo.pk] for photo in ready])
            results = captioner.caption_embeddings(embeddings, options)
            familiarities = captioner.familiarity(embeddings)  # how close each photo is to the training images
        except MlcoreError as error:
            raise _GroupFailed(unusable, f"The model could not caption this photo: {error}") from error
        except Exception as error:
            logger.exception("captioning failed for %d photos", len(ready))
            raise _GroupFailed(
                Photo.FailureKind.ENGINE_ERROR, f"Captioning failed: {error.__class__.__name__}: {error}"
            ) from error
    except _GroupFailed as failure:
        for photo in photos:
            if photo.pk not in outcome.finished:
                _fail(photo, claim, failure.kind, str(failure), outcome)
        return
    clip_scores = _clip_scores(captioner, [vectors[photo.pk] for photo in ready], [result.text for result in results])
    for photo, result, clip_score, familiarity in zip(ready, results, clip_scores, familiarities, strict=True):
        finished = jobs.finish_captioned(
            photo=photo,
            token=claim.token,
            model_version=model_version,
            embedding=embedding_to_bytes(vectors[photo.pk].numpy()),
            text=result.text,
            decoding=options.to_dict(),
            score=float(result.score),
            clip_score=clip_score,
            familiarity=familiarity.value,
            confident=familiarity.confident,
        )
        outcome.finished.add(photo.pk)
        outcome.count(finished)


def _clip_scores(captioner: "Captioner", vectors: list["torch.Tensor"], texts: list[str]) -> list[float | None]:
    """CLIPScore of each new caption against its photo, in the model's own CLIP (one text-tower call for the
    batch): the review queue shows the worst first. A caption is still written when scoring fails."""
    import torch

    from mlcore.clipscore import caption_clip_scores

    try:
        return list(caption_clip_scores(captioner, torch.stack(vectors), texts).per_item)
    except Exception:
        logger.exception("could not compute the CLIPScore of %d captions; they are stored without it", len(texts))
        return [None] * len(texts)


def _embeddings(
    captioner: "Captioner", model_version: ModelVersion, claim: jobs.Claim, photos: list[Photo], outcome: BatchOutcome
) -> dict[int, "torch.Tensor"]:
    """photo pk -> CLIP embedding: stored ones when the same model made them, the rest embedded in one call.
    A photo whose file cannot be read fails alone."""
    import torch

    from mlcore import ImageDecodeError, MlcoreError

    vectors = {}
    to_embed: list[tuple[Photo, object]] = []
    for photo in photos:
        if photo.embedding is not None and photo.embedding_model_id == model_version.pk:
            vectors[photo.pk] = torch.from_numpy(embedding_from_bytes(photo.embedding).copy())
            continue
        try:
            to_embed.append((photo, _open_photo(photo)))
        except (ImageDecodeError, OSError) as error:
            _fail(photo, claim, Photo.FailureKind.UNREADABLE_FILE, f"The stored photo cannot be read: {error}", outcome)
    if to_embed:
        try:
            embedded = captioner.embed([image for _photo, image in to_embed])
        except MlcoreError as error:
            raise _GroupFailed(Photo.FailureKind.MODEL_UNUSABLE, f"The model's CLIP cannot be used: {error}") from error
        except Exception as error:
            logger.exception("embedding failed for %d photos", len(to_embed))
            raise _GroupFailed(
                Photo.FailureKind.ENGINE_ERROR, f"Embedding failed: {error.__class__.__name__}: {error}"
            ) from error
        for (photo, _image), vector in zip(to_embed, embedded, strict=True):
            vectors[photo.pk] = vector.float()
    return vectors


def _open_photo(photo: Photo) -> "Image.Image":
    from PIL import Image

    from mlcore import prepare_image

    with photo.original.open("rb") as file, Image.open(file) as image:
        image.load()
        return prepare_image(image)


def _fail(photo: Photo, claim: jobs.Claim, kind: str, message: str, outcome: BatchOutcome) -> None:
    failure = jobs.finish_failed(photo=photo, token=claim.token, kind=kind, message=message)
    outcome.finished.add(photo.pk)
    outcome.count(failure.finished)
    outcome.messages.append(failure.message)
