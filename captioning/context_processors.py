from captioning.services.model_preparation import model_preparation_get
from captioning.translators import available_languages


def caption_languages(request):
    """The header's language picker: the languages on offer and the visitor's choice."""
    from captioning.views import caption_language

    return {"caption_languages": available_languages(), "current_caption_language": caption_language(request)}


def model_preparation(request):
    """Every page says when the captioning model is still being prepared (`make run`), and why it is not the one
    asked for."""
    return {"model_preparation": model_preparation_get()}
