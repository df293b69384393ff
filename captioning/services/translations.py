"""Caption translations: each (caption, language) is translated once, by a worker, and stored; a failure is
stored with its message and can be retried."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from captioning.models import Caption, Translation
from captioning.translators import (
    SOURCE_LANGUAGE,
    TranslationFailed,
    forget_stored_languages,
    language_name,
    translatable_languages,
    translate,
    translation_provider,
)

logger = logging.getLogger(__name__)

TRANSLATE_TASK = "captioning.tasks.translate_caption"


def translation_request(*, caption: Caption, language: str) -> Translation | None:
    """The translation of `caption` into `language`, queued for a worker when it does not exist yet.
    None for the captions' own language. A failed one stays failed until `translation_retry`."""
    _check_language(language)
    if language == SOURCE_LANGUAGE:
        return None
    translation = Translation.objects.filter(caption=caption, language=language).first()
    if translation is not None:
        return translation
    _check_translatable(language)
    try:
        with transaction.atomic():
            translation = Translation.objects.create(caption=caption, language=language)
    except IntegrityError:
        # Asked for twice at once: the first request's row stands.
        return Translation.objects.get(caption=caption, language=language)
    transaction.on_commit(lambda: _queue(translation.pk))
    return translation


def translation_request_many(*, captions: list[Caption], language: str) -> int:
    """Queues the missing translations of several captions (a gallery page in another language)."""
    if language == SOURCE_LANGUAGE or language not in translatable_languages():
        return 0  # nothing new is sent out without a configured service that translates into it
    have = set(Translation.objects.filter(caption__in=captions, language=language).values_list("caption_id", flat=True))
    queued = 0
    for caption in captions:
        if caption.pk not in have and translation_request(caption=caption, language=language) is not None:
            queued += 1
    return queued


def translation_retry(*, translation: Translation) -> Translation:
    if translation.status != Translation.Status.FAILED:
        raise ValidationError("Only a failed translation can be retried.")
    _check_translatable(translation.language)
    Translation.objects.filter(pk=translation.pk, status=Translation.Status.FAILED).update(
        status=Translation.Status.PENDING, error_message="", updated_at=timezone.now()
    )
    transaction.on_commit(lambda: _queue(translation.pk))
    translation.refresh_from_db()
    return translation


def translation_perform(*, translation_id: int) -> Translation | None:
    """Calls the translation provider for a pending translation and stores the text or the error."""
    translation = Translation.objects.select_related("caption").filter(pk=translation_id).first()
    if translation is None or translation.status != Translation.Status.PENDING:
        return translation  # deleted with its caption, or done by an earlier run of the same task
    Translation.objects.filter(pk=translation.pk).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    try:
        result = translate(translation.caption.text, translation.language)
    except TranslationFailed as error:
        logger.warning("translation %s into %s failed: %s", translation.pk, translation.language, error)
        Translation.objects.filter(pk=translation.pk).update(
            status=Translation.Status.FAILED,
            error_message=str(error),
            provider=settings.TRANSLATION_PROVIDER,
            updated_at=timezone.now(),
        )
    else:
        Translation.objects.filter(pk=translation.pk).update(
            status=Translation.Status.DONE,
            text=result.text,
            provider=result.provider,
            error_message="",
            updated_at=timezone.now(),
        )
        forget_stored_languages()
    translation.refresh_from_db()
    return translation


def translation_requeue_stalled(*, older_than_seconds: int = 300) -> int:
    """Pending translations whose task was lost (broker flushed, worker killed) are queued again."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        Translation.objects.filter(status=Translation.Status.PENDING, updated_at__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    for translation_id in ids:
        Translation.objects.filter(pk=translation_id).update(updated_at=timezone.now())
        _queue(translation_id)
    return len(ids)


def _check_language(language: str) -> None:
    if language != SOURCE_LANGUAGE and language not in settings.CAPTION_LANGUAGES:
        raise ValidationError(f"Captions are not translated into {language_name(language)} here.")


def _check_translatable(language: str) -> None:
    """A new translation sends the caption's text to the configured service: refused when there is none."""
    if not translation_provider():
        raise ValidationError(
            "No translation service is configured on this server, so no new translations are made; "
            "only stored ones are shown."
        )
    if language not in translatable_languages():
        raise ValidationError(
            f"The translation service configured here does not translate into {language_name(language)}."
        )


def _queue(translation_id: int) -> None:
    from django_q.tasks import async_task

    try:
        async_task(TRANSLATE_TASK, translation_id, group="translations")
    except Exception:
        logger.exception("could not queue translation %s; the periodic sweep will retry", translation_id)
