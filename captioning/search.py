"""Search: the photos a user can see, found two ways at once and ranked in one list.

- By image (CLIP text-to-image): the query is embedded by the text tower of the same CLIP that embedded the
  photos (the model version's `Captioner.embed_text`), and compared by cosine similarity with every stored
  photo embedding. The embeddings live in memory, one float32 matrix per model version and per process
  (`EmbeddingIndex`): 100,000 photos of a 512-d CLIP take 200 MB and one matrix-vector product (see
  benchmarks/search.py). Each search first asks the database what changed since (a count and the latest
  `updated_at`, on an index), so a matrix is loaded once and then kept fresh by small reads.
- By caption text: the words of the query (common words like "a" or "the" left out) in the current caption
  or in any of its translations (every stored language), case-insensitive; more words matched ranks higher,
  the whole phrase higher still.

The two rankings are merged by reciprocal rank fusion (each photo scores 1/(60 + rank) in each list it is
in), which needs no calibration between a cosine and a count of words. Only what `user` may see is searched
(the galleries of `gallery_list_visible_to`, never others' unlisted ones) and every returned photo is read
back through `photo_list_visible_to`. At most SEARCH_MAX_RESULTS photos are ranked.
"""

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db.models import Case, Count, Exists, IntegerField, Max, OuterRef, Q, Value, When

from captioning import engine
from captioning.confidence import photo_ids_with_unsure_caption
from captioning.models import Caption, ModelVersion, Photo, Translation, embedding_from_bytes
from captioning.selectors import (
    UserOrAnonymous,
    gallery_list_visible_to,
    model_version_active,
    photo_list_visible_to,
    photo_with_current_caption,
)

logger = logging.getLogger(__name__)

RANK_FUSION_K = 60
MAX_QUERY_LENGTH = 200
MAX_QUERY_WORDS = 8
QUERY_CACHE_SIZE = 256


@dataclass(frozen=True)
class SearchHit:
    photo_id: int
    score: float  # fused: higher is better
    image_similarity: float | None  # cosine between the query's and the photo's CLIP embeddings
    text_match: float | None  # share of the query's words found in the caption or a translation (+1 phrase)


@dataclass
class SearchResults:
    """The ranked hits of one query. Sliced (a page), it reads those photos, visible ones only, in order."""

    user: object
    query: str
    hits: list[SearchHit]
    image_search: bool  # the CLIP part ran (it cannot without an embedded photo or a loadable model)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hits)

    def count(self) -> int:
        return len(self.hits)

    def __getitem__(self, index):
        hits = self.hits[index] if isinstance(index, slice) else [self.hits[index]]
        visible = photo_list_visible_to(self.user).filter(pk__in=[hit.photo_id for hit in hits])
        photos = {photo.pk: photo for photo in photo_with_current_caption(visible)}
        page = []
        for hit in hits:
            photo = photos.get(hit.photo_id)
            if photo is not None:  # deleted (or hidden) since it was ranked
                photo.search_hit = hit
                page.append(photo)
        return page if isinstance(index, slice) else page[0]


def photo_search(*, user: UserOrAnonymous | None, query: str, limit: int | None = None) -> SearchResults:
    """Ranks the photos `user` may see for `query` (both ways at once)."""
    query = " ".join(query.split())[:MAX_QUERY_LENGTH]
    limit = limit or settings.SEARCH_MAX_RESULTS
    if not query:
        return SearchResults(user, query, [], image_search=False)
    gallery_ids = np.fromiter(gallery_list_visible_to(user).values_list("pk", flat=True).order_by(), dtype=np.int64)
    notes: list[str] = []
    image_ranked, image_search = _image_ranking(query, gallery_ids, limit, notes)
    text_ranked = _text_ranking(user, query, limit)
    hits = _fuse(image_ranked, text_ranked, limit)
    unsure = photo_ids_with_unsure_caption(hit.photo_id for hit in hits)
    hits.sort(key=lambda hit: hit.photo_id in unsure)  # guesses after confident matches, each in fused order
    return SearchResults(user, query, hits, image_search, notes)


# Text ---------------------------------------------------------------------------------------------------


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


def _text_ranking(user: UserOrAnonymous | None, query: str, limit: int) -> list[tuple[int, float]]:
    """(photo id, text score) of the visible photos whose current caption or one of its translations holds at
    least one of the query's words, best first. The score is the share of the words found in one text, plus 1
    when it holds the whole query as written; the database counts and sorts, so only the best rows come back
    (on PostgreSQL, trigram indexes find the candidates: migration 0004)."""
    words = query_words(query)
    if not words:
        return []
    galleries = gallery_list_visible_to(user).values("pk")
    captions = Caption.objects.filter(is_current=True, photo__gallery__in=galleries)
    translations = Translation.objects.filter(
        status=Translation.Status.DONE, caption__is_current=True, caption__photo__gallery__in=galleries
    )
    best: dict[int, float] = {}
    for texts, photo_field in ((captions, "photo_id"), (translations, "caption__photo_id")):
        for photo_id, score in _best_matches(texts, photo_field, words, query.lower(), limit):
            best[photo_id] = max(score, best.get(photo_id, 0.0))
    return sorted(best.items(), key=lambda item: (-item[1], -item[0]))[:limit]


def _best_matches(texts, photo_field: str, words: list[str], phrase: str, limit: int):
    def holds(text: str) -> Case:
        return Case(When(text__icontains=text, then=Value(1)), default=Value(0), output_field=IntegerField())

    any_word = Q()
    for word in words:
        any_word |= Q(text__icontains=word)
    matched = sum((holds(word) for word in words), Value(0))
    whole = holds(phrase) if len(words) > 1 else Value(0, output_field=IntegerField())
    rows = (
        texts.filter(any_word)
        .annotate(matched=matched, whole=whole)
        .order_by("-matched", "-whole", f"-{photo_field}")
        .values_list(photo_field, "matched", "whole")[:limit]
    )
    return [(photo_id, count / len(words) + whole) for photo_id, count, whole in rows]


# Image --------------------------------------------------------------------------------------------------


class EmbeddingIndex:
    """The normalised CLIP embeddings of the photos one model version embedded, with their gallery ids.

    `refresh()` brings it up to date with the database: nothing is read when the count and the latest
    `updated_at` are unchanged, the changed rows otherwise, and the list of ids too when some were removed.
    Rows are kept in buffers that grow like a list's, so new photos do not copy the whole matrix each time.
    """

    def __init__(self, model_version_id: int):
        self.model_version_id = model_version_id
        self._size = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._galleries = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, 0), dtype=np.float32)
        self._row_of: dict[int, int] = {}
        self._seen_until = None
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    @property
    def photo_ids(self) -> np.ndarray:
        return self._ids[: self._size]

    @property
    def gallery_ids(self) -> np.ndarray:
        return self._galleries[: self._size]

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._size]

    def _rows(self):
        # The worker writes a photo's embedding and its model together: the model is enough to select them, and
        # the count and latest time then come from the (embedding_model, updated_at) index alone.
        return Photo.objects.filter(embedding_model_id=self.model_version_id)

    def refresh(self) -> None:
        with self._lock:
            state = self._rows().aggregate(count=Count("pk"), latest=Max("updated_at"))
            if state["count"] == self._size and state["latest"] == self._seen_until:
                return
            changed = self._rows()
            if self._seen_until is not None:
                # Inclusive: rows written in the same instant as the last one seen are read again, not missed.
                changed = changed.filter(updated_at__gte=self._seen_until)
            rows = changed.values_list("pk", "gallery_id", "embedding", "updated_at").order_by()
            for photo_id, gallery_id, embedding, updated_at in rows.iterator(chunk_size=2000):
                if embedding is not None:
                    self._put(photo_id, gallery_id, embedding_from_bytes(embedding))
                elif photo_id not in self._row_of:  # no vector: counted, never found by image
                    self._put(photo_id, gallery_id, None)
                if self._seen_until is None or updated_at > self._seen_until:
                    self._seen_until = updated_at
            if self._size != state["count"]:
                self._keep_only(set(self._rows().values_list("pk", flat=True).order_by()))

    def _put(self, photo_id: int, gallery_id: int, vector: np.ndarray | None) -> None:
        if vector is None:
            vector = np.zeros(self._vectors.shape[1], dtype=np.float32)
        if self._vectors.shape[1] != vector.shape[0]:  # the first row (a model's CLIP has one size)
            self._size, self._row_of = 0, {}
            self._vectors = np.empty((0, vector.shape[0]), dtype=np.float32)
        row = self._row_of.get(photo_id)
        if row is None:
            row = self._size
            if row == len(self._ids):
                self._reserve(max(16, row * 3 // 2))
            self._size += 1
            self._row_of[photo_id] = row
            self._ids[row] = photo_id
        self._galleries[row] = gallery_id
        norm = float(np.linalg.norm(vector))
        self._vectors[row] = vector / norm if norm > 0 else vector

    def _reserve(self, capacity: int) -> None:
        ids, galleries = np.empty(capacity, dtype=np.int64), np.empty(capacity, dtype=np.int64)
        vectors = np.empty((capacity, self._vectors.shape[1]), dtype=np.float32)
        ids[: self._size], galleries[: self._size], vectors[: self._size] = (
            self.photo_ids,
            self.gallery_ids,
            self.vectors,
        )
        self._ids, self._galleries, self._vectors = ids, galleries, vectors

    def _keep_only(self, present: set[int]) -> None:
        keep = np.fromiter((photo_id in present for photo_id in self.photo_ids.tolist()), dtype=bool, count=self._size)
        self._ids, self._galleries = self.photo_ids[keep].copy(), self.gallery_ids[keep].copy()
        self._vectors = np.ascontiguousarray(self.vectors[keep])
        self._size = len(self._ids)
        self._row_of = {photo_id: row for row, photo_id in enumerate(self._ids.tolist())}

    def similarities(self, query_vector: np.ndarray, gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, cosine similarities) of the photos in `gallery_ids`."""
        if self._size == 0 or query_vector.shape[0] != self._vectors.shape[1]:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        # One product over every row, then the visible ones: cheaper than copying the visible rows out first.
        similarities = self.vectors @ query_vector
        visible = np.isin(self.gallery_ids, gallery_ids)
        if visible.all():
            return self.photo_ids, similarities
        return self.photo_ids[visible], similarities[visible]


_indexes: dict[int, EmbeddingIndex] = {}
_indexes_lock = threading.Lock()
_query_vectors: "OrderedDict[tuple[int, str, str], np.ndarray]" = OrderedDict()


def embedding_index(model_version_id: int) -> EmbeddingIndex:
    with _indexes_lock:
        index = _indexes.get(model_version_id)
        if index is None:
            index = _indexes[model_version_id] = EmbeddingIndex(model_version_id)
    index.refresh()
    return index


def forget_indexes() -> None:
    """Drops every in-memory index and cached query embedding (tests, and a process that wants memory back)."""
    with _indexes_lock:
        _indexes.clear()
        _query_vectors.clear()


def query_embedding(model_version: ModelVersion, query: str) -> np.ndarray:
    """The normalised CLIP text embedding of `query` by `model_version`'s CLIP (the captioner is loaded on first
    use and kept, as in the worker). Recent queries are remembered, so paging does not embed again."""
    key = (model_version.pk, model_version.checkpoint_path, query)
    cached = _query_vectors.get(key)
    if cached is not None:
        _query_vectors.move_to_end(key)
        return cached
    captioner = engine.captioner_for(model_version)
    vector = captioner.embed_text([query])[0].detach().float().cpu().numpy().astype(np.float32)
    norm = float(np.linalg.norm(vector))
    vector = vector / norm if norm > 0 else vector
    _query_vectors[key] = vector
    while len(_query_vectors) > QUERY_CACHE_SIZE:
        _query_vectors.popitem(last=False)
    return vector


def _image_ranking(
    query: str, gallery_ids: np.ndarray, limit: int, notes: list[str]
) -> tuple[list[tuple[int, float]], bool]:
    """(photo id, cosine) of the best `limit` visible photos over every model version's embeddings. Model
    versions sharing a CLIP share one query embedding (the active model's when it is one of them)."""
    embedded = Photo.objects.filter(embedding_model=OuterRef("pk"))
    versions = list(ModelVersion.objects.filter(Exists(embedded)))
    if not versions or gallery_ids.size == 0:
        return [], False
    active = model_version_active()
    by_clip: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_clip.setdefault(version.clip_model or f"model {version.pk}", []).append(version)
    found_ids, found_similarities, searched = [], [], False
    for group in by_clip.values():
        embedder = next((version for version in group if active and version.pk == active.pk), group[0])
        try:
            vector = query_embedding(embedder, query)
        except Exception as error:  # a missing checkpoint or a CLIP that cannot load: text search still answers
            logger.warning("image search with %s is unavailable: %s", embedder.name, error)
            notes.append(f"Image search with the model {embedder.name!r} is unavailable: {error}")
            continue
        searched = True
        for version in group:
            photo_ids, similarities = embedding_index(version.pk).similarities(vector, gallery_ids)
            found_ids.append(photo_ids)
            found_similarities.append(similarities)
    if not found_ids:
        return [], searched
    photo_ids, similarities = np.concatenate(found_ids), np.concatenate(found_similarities)
    if similarities.size > limit:
        best = np.argpartition(-similarities, limit - 1)[:limit]
        photo_ids, similarities = photo_ids[best], similarities[best]
    order = np.lexsort((-photo_ids, -similarities))
    return list(zip(photo_ids[order].tolist(), similarities[order].tolist(), strict=True)), searched


# Fusion -------------------------------------------------------------------------------------------------


def _fuse(image_ranked: Sequence[tuple[int, float]], text_ranked: Sequence[tuple[int, float]], limit: int):
    scores: dict[int, float] = {}
    similarity: dict[int, float] = {}
    text: dict[int, float] = {}
    for rank, (photo_id, value) in enumerate(image_ranked):
        scores[photo_id] = scores.get(photo_id, 0.0) + 1 / (RANK_FUSION_K + rank + 1)
        similarity[photo_id] = value
    rank, previous = 0, None
    for position, (photo_id, value) in enumerate(text_ranked):
        if value != previous:  # equal text scores share a rank
            rank, previous = position, value
        scores[photo_id] = scores.get(photo_id, 0.0) + 1 / (RANK_FUSION_K + rank + 1)
        text[photo_id] = value
    ranked = sorted(scores.items(), key=lambda item: (-item[1], -item[0]))[:limit]
    return [SearchHit(photo_id, score, similarity.get(photo_id), text.get(photo_id)) for photo_id, score in ranked]
