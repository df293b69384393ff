"""Search by what is in the photo (CLIP text-to-image): the query is embedded by the text tower of the same CLIP
that embedded the photos (the model version's `Captioner.embed_text`) and compared by cosine with the stored
photo embeddings, in PostgreSQL with pgvector where it is installed, else in this process's memory."""

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import Exists, OuterRef

from captioning import engine
from captioning.model_facts import LOCAL_CLIP_PREFIX
from captioning.models import ModelVersion, Photo
from captioning.search import memory, pgvector
from captioning.selectors import UserOrAnonymous, photo_exists_visible_to, photo_list_visible_to
from captioning.statements import statement

logger = logging.getLogger(__name__)

QUERY_CACHE_SIZE = 256


class QueryEmbeddingCache:
    """The embeddings of recent queries, the least recently used dropped first; safe across threads."""

    def __init__(self, size: int):
        self._size = size
        self._vectors: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
            return vector

    def put(self, key: tuple, vector: np.ndarray) -> None:
        with self._lock:
            self._vectors[key] = vector
            self._vectors.move_to_end(key)
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()


query_embeddings = QueryEmbeddingCache(QUERY_CACHE_SIZE)


def query_embedding(model_version: ModelVersion, query: str) -> np.ndarray:
    """The normalised CLIP text embedding of `query` by `model_version`'s CLIP (the captioner is loaded on first
    use and kept, as in the worker). Recent queries are remembered, so paging does not embed again."""
    key = (model_version.pk, model_version.checkpoint_path, query)
    cached = query_embeddings.get(key)
    if cached is not None:
        return cached
    # Embedded outside the cache's lock: two threads may embed the same new query once each, but no search
    # waits for another's text tower.
    captioner = engine.captioner_for(model_version)
    vector = captioner.embed_text([query])[0].detach().float().cpu().numpy().astype(np.float32)
    norm = float(np.linalg.norm(vector))
    vector = vector / norm if norm > 0 else vector
    query_embeddings.put(key, vector)
    return vector


@dataclass(frozen=True)
class ImageRelevance:
    """Which cosines between a query and a photo count as a match, for one CLIP: at least `floor`, and at most
    `margin` below the best photo found (a query's best cosine moves with the query; what matches is near it)."""

    floor: float
    margin: float

    def cutoff(self, best_similarity: float) -> float:
        return max(self.floor, best_similarity - self.margin)


# OpenAI's CLIPs (ViT-B/32): a photo that shows the query scores 0.25-0.35 against it, an unrelated one 0.1-0.2.
OPENAI_CLIP_RELEVANCE = ImageRelevance(floor=0.21, margin=0.08)
# A CLIP trained here (the demo's recipe, measured on 300 held-out scenes): a scene's own description scores
# 0.83-0.91 (5th-95th percentile), another scene's 0.02 (median; 0.5 at the 95th, those sharing most of its words).
# A short query ("a red star") is weaker, 0.37 at the median for a scene holding one: its caption's words find it.
LOCAL_CLIP_RELEVANCE = ImageRelevance(floor=0.5, margin=0.2)


def image_relevance(model_version: ModelVersion) -> ImageRelevance:
    """The cut-off of `model_version`'s CLIP: the one measured for its kind of CLIP, unless SEARCH_IMAGE_FLOOR
    or SEARCH_IMAGE_MARGIN is set."""
    trained_here = model_version.clip_model.startswith(LOCAL_CLIP_PREFIX)
    measured = LOCAL_CLIP_RELEVANCE if trained_here else OPENAI_CLIP_RELEVANCE
    floor, margin = settings.SEARCH_IMAGE_FLOOR, settings.SEARCH_IMAGE_MARGIN
    return ImageRelevance(
        floor=measured.floor if floor is None else floor, margin=measured.margin if margin is None else margin
    )


def image_search_backend() -> str:
    """Where photo embeddings are searched: "pgvector" or "memory" (chosen by what the database has)."""
    return "pgvector" if pgvector.in_use() else "memory"


@dataclass
class ImageRanking:
    ranked: list[tuple[int, float]]  # (photo id, cosine), best first, only the photos above their CLIP's cut-off
    searched: bool  # whether any CLIP could embed the query
    cutoffs: dict[str, float]  # the cosine a photo needed, by the name of the model whose CLIP embedded the query


_MODEL_VERSION_FIELDS = ("id", "name", "checkpoint_path", "config", "is_active")


def _model_versions_with_embeddings() -> list[ModelVersion]:
    """The model versions that embedded a photo, with what search reads of them (the others are deferred), from
    a statement compiled once per thread (captioning.statements): a queryset of instances cost 1,900 Python calls
    a search."""
    embedded = Photo.objects.filter(embedding_model=OuterRef("pk"))
    versions = statement(
        ("model versions with embeddings",),
        lambda: ModelVersion.objects.filter(Exists(embedded)).values(*_MODEL_VERSION_FIELDS),
    )
    return [
        ModelVersion.from_db(
            versions.compiler.using, _MODEL_VERSION_FIELDS, [row[field] for field in _MODEL_VERSION_FIELDS]
        )
        for row in versions.rows({})
    ]


def image_ranking(query: str, user: UserOrAnonymous | None, limit: int, notes: list[str]) -> ImageRanking:
    """The best `limit` of the photos `user` may see over every model version's embeddings that match the query well
    (`image_relevance`). Model versions sharing a CLIP share one query embedding and one cut-off (the active
    model's when it is one of them)."""
    versions = _model_versions_with_embeddings()
    if not versions:
        return ImageRanking([], False, {})
    use_pgvector = pgvector.in_use()
    visible_photos = photo_list_visible_to(user) if use_pgvector else None
    by_clip: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_clip.setdefault(version.clip_model or f"model {version.pk}", []).append(version)
    found_ids, found_similarities, searched, cutoffs = [], [], False, {}
    for group in by_clip.values():
        embedder = next((version for version in group if version.is_active), group[0])
        try:
            vector = query_embedding(embedder, query)
        except Exception as error:  # a missing checkpoint or a CLIP that cannot load: text search still answers
            logger.warning("image search with %s is unavailable: %s", embedder.name, error, exc_info=True)
            notes.append(f"Image search with the model {embedder.name!r} is unavailable: {error}")
            continue
        searched = True
        relevance, version_ids = image_relevance(embedder), [version.pk for version in group]
        if use_pgvector:
            photo_ids, similarities = pgvector.nearest(version_ids, vector, visible_photos, limit)
        else:
            photo_ids, similarities = memory.nearest(version_ids, vector, user, relevance.floor, limit)
        if similarities.size == 0:
            if photo_exists_visible_to(user, embedded_by=version_ids):
                cutoffs[embedder.name] = relevance.floor  # the best photo the user may see fell short of it
            continue
        cutoffs[embedder.name] = relevance.cutoff(float(similarities.max()))
        matching = similarities >= cutoffs[embedder.name]
        found_ids.append(photo_ids[matching])
        found_similarities.append(similarities[matching])
    if not found_ids:
        return ImageRanking([], searched, cutoffs)
    photo_ids, similarities = np.concatenate(found_ids), np.concatenate(found_similarities)
    if similarities.size > limit:
        best = np.argpartition(-similarities, limit - 1)[:limit]
        photo_ids, similarities = photo_ids[best], similarities[best]
    order = np.lexsort((-photo_ids, -similarities))
    ranked = list(zip(photo_ids[order].tolist(), similarities[order].tolist(), strict=True))
    return ImageRanking(ranked, searched, cutoffs)
