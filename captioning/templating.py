"""What the site's pages call from their templates (clippro_site/jinja2.py makes them globals and filters)."""

from django.conf import settings
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from captioning import selectors


def shorten_middle(text: str, length: int = 32) -> str:
    """ "IMG_20240612_183455_holiday_beach_final.jpg" -> "IMG_20240612_1…ach_final.jpg": a long file name keeps its
    start and its extension, which is what tells files apart."""
    text = str(text or "")
    if len(text) <= length:
        return text
    tail = (length - 1) // 2
    head = length - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


@pass_context
def selection_tools(context: Context) -> Markup:
    """A grid's "Select" button and the bar of what may be done to the selected photos: download for everyone
    who sees them; for a signed-in visitor also add to one of the galleries they may upload to, caption again and
    delete (the tiles say which photos they may change; the server decides each one again), and on a gallery they
    own or edit, remove from it."""
    request = context["request"]
    template = context.environment.get_template("captioning/_selection.html")
    return Markup(
        template.render(
            user=request.user,
            csrf_token=context.get("csrf_token"),
            galleries=selectors.gallery_rows_for_upload(request.user),
            zip_limit=settings.ZIP_MAX_PHOTOS,
            selection_limit=settings.SELECTION_MAX_PHOTOS,
            # On a gallery's page, its owner and editors may take photos out of it.
            remove_from=context.get("gallery") if context.get("can_upload") else None,
        )
    )
