"""Staff review of captions (the admin's review queue): approve, reject or rewrite a caption, one or many at a
time. Every decision records who made it and when."""

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from captioning.models import Caption
from captioning.selectors import caption_can_review
from captioning.services.photos import caption_write_edited


def caption_approve(*, caption: Caption, acting_user: AbstractBaseUser) -> Caption:
    return _decide(caption, acting_user, Caption.ReviewState.APPROVED)


def caption_reject(*, caption: Caption, acting_user: AbstractBaseUser) -> Caption:
    """Marks the caption wrong. It stays the photo's caption (and in its history) until someone rewrites it or
    the photo is captioned again; the review queue no longer shows it."""
    return _decide(caption, acting_user, Caption.ReviewState.REJECTED)


def caption_approve_many(*, captions: QuerySet[Caption], acting_user: AbstractBaseUser) -> int:
    return _decide_many(captions, acting_user, Caption.ReviewState.APPROVED)


def caption_reject_many(*, captions: QuerySet[Caption], acting_user: AbstractBaseUser) -> int:
    return _decide_many(captions, acting_user, Caption.ReviewState.REJECTED)


def caption_review_edit(*, caption: Caption, acting_user: AbstractBaseUser, text: str) -> Caption:
    """The reviewer's wording becomes the photo's current caption, marked as edited in review by them; the
    caption they corrected stays in the history. Editing an old (not current) caption is refused."""
    _require_reviewer(acting_user)
    if not Caption.objects.filter(pk=caption.pk, is_current=True).exists():
        raise PermissionDenied("Only a photo's current caption can be edited in review.")
    return caption_write_edited(
        photo=caption.photo, acting_user=acting_user, text=text, review_state=Caption.ReviewState.EDITED
    )


def _decide(caption: Caption, acting_user: AbstractBaseUser, state: str) -> Caption:
    _decide_many(Caption.objects.filter(pk=caption.pk), acting_user, state)
    caption.refresh_from_db()
    return caption


@transaction.atomic
def _decide_many(captions: QuerySet[Caption], acting_user: AbstractBaseUser, state: str) -> int:
    _require_reviewer(acting_user)
    return Caption.objects.filter(pk__in=captions.values("pk")).update(
        review_state=state, reviewed_by=acting_user, reviewed_at=timezone.now()
    )


def _require_reviewer(user: AbstractBaseUser) -> None:
    if not caption_can_review(user):
        raise PermissionDenied("Only staff with the right to change captions review them.")
