from captioning.translators import available_languages


def caption_languages(request):
    """The header's language picker: the languages on offer and the visitor's choice."""
    from captioning.views import caption_language

    return {"caption_languages": available_languages(), "current_caption_language": caption_language(request)}
