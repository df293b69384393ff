"""django-q2 tasks: thin wrappers that call a service and report what it did (the task's result)."""

from captioning import jobs
from captioning.services.translations import translation_perform, translation_requeue_stalled
from captioning.services.worker import caption_pending_photos as caption_pending_photos_service


def caption_pending_photos() -> dict:
    outcome = caption_pending_photos_service()
    return {
        "claimed": outcome.claimed,
        "captioned": outcome.captioned,
        "retrying": outcome.retrying,
        "failed": outcome.failed,
        "taken_over": outcome.lost,
    }


def translate_caption(translation_id: int) -> str | None:
    translation = translation_perform(translation_id=translation_id)
    return translation.status if translation else None


def sweep() -> dict:
    """Every minute (a django-q2 schedule made by migration 0002): restarts work whose task was lost, and
    photos whose worker died or whose retry is due."""
    waiting = jobs.work_waiting()
    if waiting:
        jobs.request_worker_run()
    return {"captioning_queued": waiting, "translations_requeued": translation_requeue_stalled()}
