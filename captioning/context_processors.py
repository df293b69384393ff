from django.http import HttpRequest

from captioning.services.model_preparation import model_preparation_get
from captioning.translators import provider_name, translation_provider


def caption_languages(request: HttpRequest) -> dict:
    """The header's language picker (the languages on offer and the visitor's choice) and the footer's word on
    where caption text goes."""
    from captioning.views.common import caption_language, offered_languages

    provider = translation_provider()
    return {
        "caption_languages": offered_languages(request),
        "current_caption_language": caption_language(request),
        "translation_service": provider_name(provider) if provider else "",
    }


def model_preparation(request: HttpRequest) -> dict:
    """Every page says when the captioning model is still being prepared (`make run`), and why it is not the one
    asked for."""
    return {"model_preparation": model_preparation_get()}
