"""Search by caption words: the words of the query (common words like "a" or "the" left out) in the current
caption or in any of its stored translations, case-insensitive; more words matched ranks higher, the whole
phrase higher still. On PostgreSQL, trigram indexes find the candidates (migration 0004)."""

import re

from django.db.models import Case, IntegerField, Q, QuerySet, Value, When

from captioning.models import Caption, Photo, Translation

MAX_QUERY_WORDS = 8

# Words nearly every caption has, in English and the languages captions are usually translated into: they
# would match (as substrings, too) almost everything and drown the words that say what the photo shows.
STOP_WORDS = frozenset(
    word
    for words in (
        "a an the of on in at to with and or is are its it by for from into onto this that there",  # English
        "le la les un une des de du et sur dans avec au aux en",  # French
        "der die das ein eine einen und mit auf im am",  # German
        "el los las una y con del",  # Spanish
        "il lo gli e su di da",  # Italian
        "o os as um uma em no na",  # Portuguese
        "het een op",  # Dutch
        "i w z",  # Polish
    )
    for word in words.split()
)


def query_words(query: str) -> list[str]:
    """The distinct words of `query` to look for in captions, common function words left out (unless the query
    has nothing else)."""
    words = list(dict.fromkeys(re.findall(r"\w+", query.lower())))
    meaningful = [word for word in words if word not in STOP_WORDS]
    return (meaningful or words)[:MAX_QUERY_WORDS]


def text_ranking(visible_photos: QuerySet[Photo], query: str, limit: int) -> list[tuple[int, float]]:
    """(photo id, text score) of `visible_photos` whose current caption or one of its
    translations holds at least one of the query's words, best first. The score is the share of the words
    found in one text, plus 1 when it holds the whole query as written; the database counts and sorts, so only
    the best rows come back."""
    words = query_words(query)
    if not words:
        return []
    photos = visible_photos.values("pk").order_by()
    captions = Caption.objects.filter(is_current=True, photo__in=photos)
    translations = Translation.objects.filter(
        status=Translation.Status.DONE, caption__is_current=True, caption__photo__in=photos
    )
    best: dict[int, float] = {}
    for texts, photo_field in ((captions, "photo_id"), (translations, "caption__photo_id")):
        for photo_id, score in _best_matches(texts, photo_field, words, query.lower(), limit):
            best[photo_id] = max(score, best.get(photo_id, 0.0))
    return sorted(best.items(), key=lambda item: (-item[1], -item[0]))[:limit]


def _holds(text: str) -> Case:
    return Case(When(text__icontains=text, then=Value(1)), default=Value(0), output_field=IntegerField())


def _best_matches(
    texts: QuerySet, photo_field: str, words: list[str], phrase: str, limit: int
) -> list[tuple[int, float]]:
    any_word = Q()
    for word in words:
        any_word |= Q(text__icontains=word)
    matched = sum((_holds(word) for word in words), Value(0))
    whole = _holds(phrase) if len(words) > 1 else Value(0, output_field=IntegerField())
    rows = (
        texts.filter(any_word)
        .annotate(matched=matched, whole=whole)
        .order_by("-matched", "-whole", f"-{photo_field}")
        .values_list(photo_field, "matched", "whole")[:limit]
    )
    return [(photo_id, count / len(words) + whole) for photo_id, count, whole in rows]
