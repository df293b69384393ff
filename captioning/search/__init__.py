"""Search: the photos a user can see, found two ways at once and ranked in one list.

- By image (image.py): the query's CLIP text embedding against every stored photo embedding, in PostgreSQL
  with pgvector where it is installed (pgvector.py), else in this process's memory (memory.py).
- By caption text (text.py): the query's words in the current caption or any of its translations.

Only photos that match well are found: by image, those above the cut-off of the CLIP that embedded them
(`image_relevance`: an absolute floor and a margin below the best photo); by text, those holding a query word.
The two rankings are merged by reciprocal rank fusion (fusion.py). Only what `user` may see is searched (the
photos of `photo_list_visible_to`, none only in others' unlisted galleries) and every returned photo is read back
through `photo_list_visible_to` (results.py). At most SEARCH_MAX_RESULTS photos are ranked.
"""

from django.conf import settings

from captioning.confidence import photo_ids_with_unsure_caption
from captioning.search.fusion import fuse
from captioning.search.image import (
    ImageRelevance,
    image_ranking,
    image_relevance,
    image_search_backend,
    query_embedding,
    query_embeddings,
)
from captioning.search.memory import EmbeddingIndex, embedding_index
from captioning.search.memory import forget_indexes as _forget_memory_indexes
from captioning.search.results import SearchHit, SearchResults
from captioning.search.text import query_words, text_ranking
from captioning.selectors import UserOrAnonymous

__all__ = [
    "EmbeddingIndex",
    "ImageRelevance",
    "SearchHit",
    "SearchResults",
    "embedding_index",
    "forget_indexes",
    "image_relevance",
    "image_search_backend",
    "photo_search",
    "query_embedding",
    "query_words",
]

MAX_QUERY_LENGTH = 200


def photo_search(*, user: UserOrAnonymous | None, query: str, limit: int | None = None) -> SearchResults:
    """Ranks the photos `user` may see for `query` (both ways at once)."""
    query = " ".join(query.split())[:MAX_QUERY_LENGTH]
    limit = limit or settings.SEARCH_MAX_RESULTS
    if not query:
        return SearchResults(user, query, [], image_search=False, image_cutoffs={})
    notes: list[str] = []
    image = image_ranking(query, user, limit, notes)
    text = text_ranking(user, query, limit)
    hits = fuse(image.ranked, text.ranked, limit)
    # The caption-word SQL said which of its photos have a guessed caption; only photos found by image alone
    # are asked about.
    unsure = text.unsure
    if image_only := [hit.photo_id for hit in hits if hit.text_match is None]:
        unsure = unsure | photo_ids_with_unsure_caption(image_only)
    hits.sort(key=lambda hit: hit.photo_id in unsure)  # guesses after confident matches, each in fused order
    return SearchResults(user, query, hits, image.searched, image.cutoffs, notes)


def forget_indexes() -> None:
    """Drops every in-memory index and cached query embedding (tests, and a process that wants memory back)."""
    _forget_memory_indexes()
    query_embeddings.clear()
