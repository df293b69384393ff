"""A photo's captioning job: the only code that writes its state (status, claim, attempts, error and failure
kind, the re-caption request).

Each change is a named transition, one conditional UPDATE allowed only from the states RULES lists for it. A
transition whose photo has moved on meanwhile (a worker's claim taken over, a photo re-queued under a worker)
matches no row and changes nothing; the caller learns it from the count.

    new photo ─queue─▶ queued ─claim─▶ processing ─finish─▶ captioned
                         ▲               │    │
                         └─retry_later───┘    └─fail / abandon─▶ failed ─retry─▶ queued
    queued, processing, captioned, failed ─requeue─▶ queued

`claim` also takes over a processing photo whose claim is older than CAPTION_LEASE_SECONDS (its worker died);
`abandon` fails such a photo instead once it used up CAPTION_MAX_ATTEMPTS. `requeue` (caption again, the
admin's re-queue) takes a photo from a worker that holds it: the latest request wins, and that worker's late
result is dropped. Queueing asks the worker cluster for a run once the transaction commits.
"""

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from captioning.models import Caption, ModelVersion, Photo

logger = logging.getLogger(__name__)

CAPTION_TASK = "captioning.tasks.caption_pending_photos"

QUEUED, PROCESSING, CAPTIONED, FAILED = (
    Photo.Status.QUEUED,
    Photo.Status.PROCESSING,
    Photo.Status.CAPTIONED,
    Photo.Status.FAILED,
)


class Transition(enum.Enum):
    CLAIM = "claim"
    RENEW = "renew"
    FINISH = "finish"
    RETRY_LATER = "retry_later"
    FAIL = "fail"
    ABANDON = "abandon"
    REQUEUE = "requeue"
    RETRY = "retry"


# transition -> (the states it may start from, the state it leads to)
RULES: dict[Transition, tuple[frozenset[str], str]] = {
    Transition.CLAIM: (frozenset({QUEUED, PROCESSING}), PROCESSING),
    Transition.RENEW: (frozenset({PROCESSING}), PROCESSING),
    Transition.FINISH: (frozenset({PROCESSING}), CAPTIONED),
    Transition.RETRY_LATER: (frozenset({PROCESSING}), QUEUED),
    Transition.FAIL: (frozenset({PROCESSING}), FAILED),
    Transition.ABANDON: (frozenset({PROCESSING}), FAILED),
    Transition.REQUEUE: (frozenset({QUEUED, PROCESSING, CAPTIONED, FAILED}), QUEUED),
    Transition.RETRY: (frozenset({FAILED}), QUEUED),
}

# Worth another attempt: the same photo and model may well work next time (out of memory, a busy device).
RETRIABLE_FAILURES = frozenset({Photo.FailureKind.ENGINE_ERROR})

_NO_CLAIM = {"claim_token": None, "claimed_at": None}
_FRESH_START = {**_NO_CLAIM, "error_message": "", "failure_kind": "", "attempts": 0, "next_attempt_at": None}


def _move(photos: QuerySet[Photo], transition: Transition, **fields: object) -> int:
    """Moves those of `photos` that are in a state `transition` may start from; returns how many moved."""
    sources, target = RULES[transition]
    if transition is not Transition.RENEW:
        # A heartbeat is no change for readers that follow updated_at (search's index).
        fields.setdefault("updated_at", timezone.now())
    return photos.filter(status__in=sources).update(status=target, **fields)


# The queueing side --------------------------------------------------------------------------------------------


def queue_new_photo(photo: Photo) -> None:
    """A photo being uploaded (not saved yet) starts queued; a worker run is asked for once the upload commits."""
    photo.status = QUEUED
    transaction.on_commit(request_worker_run)


def requeue(*, photos: QuerySet[Photo], model_version: ModelVersion | None = None, decoding: dict | None = None) -> int:
    """Queues `photos` to be captioned again by `model_version` (None: the active model) with `decoding`
    (checked by the caller; empty: the defaults), with a fresh count of attempts. The current caption stays
    until the new one is written. Returns how many."""
    count = _move(
        photos, Transition.REQUEUE, **_FRESH_START, requested_model=model_version, requested_decoding=decoding or {}
    )
    if count:
        transaction.on_commit(request_worker_run)
    return count


def retry_failed(*, photos: QuerySet[Photo]) -> int:
    """Puts the failed ones of `photos` back in the queue with a fresh count of attempts, keeping what they
    were asked to be captioned with. Returns how many."""
    count = _move(photos, Transition.RETRY, **_FRESH_START)
    if count:
        transaction.on_commit(request_worker_run)
    return count


def request_worker_run() -> None:
    """Asks the worker cluster for a captioning run. Harmless when there is nothing to do; if the broker is
    down the periodic sweep (captioning.tasks.sweep) starts the run instead."""
    from django_q.tasks import async_task

    try:
        async_task(CAPTION_TASK, group="captioning")
    except Exception:
        logger.exception("could not queue a captioning task; the periodic sweep will pick the photos up")


def _claimable(now: datetime) -> Q:
    """Queued and due, or claimed by a worker that stopped renewing its claim (it seems to have died)."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    return (Q(status=QUEUED) & due) | _abandoned(now)


def _abandoned(now: datetime) -> Q:
    return Q(status=PROCESSING, claimed_at__lt=now - timedelta(seconds=settings.CAPTION_LEASE_SECONDS))


def work_waiting() -> bool:
    return Photo.objects.filter(_claimable(timezone.now())).exists()


# The worker side ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    token: uuid.UUID
    photos: list[Photo]


class Finished(enum.Enum):
    CAPTIONED = "captioned"
    RETRYING = "retrying"
    FAILED = "failed"
    LOST = "lost"  # the claim no longer held (taken over, or re-queued): nothing was written


@dataclass(frozen=True)
class Failure:
    finished: Finished
    message: str  # as stored on the photo


def claim_batch(*, limit: int) -> Claim:
    """Claims up to `limit` claimable photos, the oldest first, for one worker; abandoned ones that used up
    their attempts fail instead."""
    now = timezone.now()
    _move(
        Photo.objects.filter(_abandoned(now), attempts__gte=settings.CAPTION_MAX_ATTEMPTS),
        Transition.ABANDON,
        **_NO_CLAIM,
        error_message=(
            f"The worker stopped {settings.CAPTION_MAX_ATTEMPTS} times while captioning this photo (killed, out "
            "of memory, or over the task timeout). Retry it, or look at the worker's log."
        ),
        failure_kind=Photo.FailureKind.ABANDONED,
        updated_at=now,
    )
    token = uuid.uuid4()
    with transaction.atomic():
        candidates = Photo.objects.filter(_claimable(now)).order_by("created_at", "id")
        if connection.features.has_select_for_update_skip_locked:
            # Concurrent workers on PostgreSQL each take different photos instead of waiting on each other.
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        ids = list(candidates.values_list("pk", flat=True)[:limit])
        if ids:
            # The condition is checked again by the UPDATE itself: a photo another worker claimed meanwhile
            # (SQLite has no row locks) no longer matches and stays theirs.
            _move(
                Photo.objects.filter(_claimable(now), pk__in=ids),
                Transition.CLAIM,
                claim_token=token,
                claimed_at=now,
                attempts=F("attempts") + 1,
                updated_at=now,
            )
    photos = list(
        Photo.objects.filter(claim_token=token).select_related("requested_model").order_by("created_at", "id")
    )
    return Claim(token, photos)


def renew_claim(*, token: uuid.UUID) -> int:
    """The heartbeat: renews a claim on the photos it still holds (none once they are written or taken)."""
    return _move(Photo.objects.filter(claim_token=token), Transition.RENEW, claimed_at=timezone.now())


def finish_captioned(
    *,
    photo: Photo,
    token: uuid.UUID,
    model_version: ModelVersion,
    embedding: bytes,
    text: str,
    decoding: dict,
    score: float,
    clip_score: float | None,
    familiarity: float | None = None,
    confident: bool = True,
) -> Finished:
    """Stores the caption as the photo's current one, with the embedding it was written from, if our claim
    still holds (CAPTIONED); otherwise writes nothing (LOST). `familiarity` and `confident`: how close the photo
    is to the model's training images (captioning.confidence), unknown and confident by default."""
    try:
        with transaction.atomic():
            # This UPDATE also locks the row until the caption is written.
            held = _move(
                Photo.objects.filter(pk=photo.pk, claim_token=token),
                Transition.FINISH,
                **_NO_CLAIM,
                error_message="",
                failure_kind="",
                next_attempt_at=None,
                embedding=embedding,
                embedding_model=model_version,
                requested_model=None,
                requested_decoding={},
            )
            if not held:
                return Finished.LOST
            Caption.objects.filter(photo_id=photo.pk, is_current=True).update(is_current=False)
            Caption.objects.create(
                photo_id=photo.pk,
                text=text,
                source=Caption.Source.MODEL,
                model_version=model_version,
                decoding=decoding,
                score=score,
                clip_score=clip_score,
                familiarity=familiarity,
                confident=confident,
                is_current=True,
            )
    except IntegrityError:
        # Someone else made a caption current at the same instant; theirs stands.
        logger.warning("photo %s got a current caption from elsewhere while captioning; ours was dropped", photo.pk)
        return Finished.LOST
    return Finished.CAPTIONED


def finish_failed(*, photo: Photo, token: uuid.UUID, kind: str, message: str) -> Failure:
    """Records a failed attempt if our claim still holds: queued again after a growing delay when `kind` is
    worth retrying and attempts are left (RETRYING), failed otherwise (FAILED)."""
    retry = kind in RETRIABLE_FAILURES and photo.attempts < settings.CAPTION_MAX_ATTEMPTS
    held = Photo.objects.filter(pk=photo.pk, claim_token=token)
    if retry:
        message = f"Attempt {photo.attempts} of {settings.CAPTION_MAX_ATTEMPTS} failed: {message} It will be retried."
        next_attempt_at = timezone.now() + timedelta(seconds=settings.CAPTION_RETRY_DELAY_SECONDS * photo.attempts)
        moved = _move(
            held,
            Transition.RETRY_LATER,
            **_NO_CLAIM,
            error_message=message,
            failure_kind=kind,
            next_attempt_at=next_attempt_at,
        )
        return Failure(Finished.RETRYING if moved else Finished.LOST, message)
    moved = _move(held, Transition.FAIL, **_NO_CLAIM, error_message=message, failure_kind=kind, next_attempt_at=None)
    return Failure(Finished.FAILED if moved else Finished.LOST, message)
