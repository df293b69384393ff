"""Search by what is in the photo (CLIP text-to-image): the query is embedded by the text tower of the same CLIP
that embedded the photos (the model version's `Captioner.embed_text`) and compared by cosine with the stored
photo embeddings, in PostgreSQL with pgvector where it is installed, else in this process's memory."""

import logging
import threading
from collections import OrderedDict

import numpy as np
from django.db.models import Exists, OuterRef, QuerySet

from captioning import engine
from captioning.models import ModelVersion, Photo
from captioning.search import memory, pgvector

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


def image_search_backend() -> str:
    """Where photo embeddings are searched: "pgvector" or "memory" (chosen by what the database has)."""
    return "pgvector" if pgvector.in_use() else "memory"


def image_ranking(
    query: str, visible_photos: QuerySet[Photo], limit: int, notes: list[str]
) -> tuple[list[tuple[int, float]], bool]:
    """(photo id, cosine) of the best `limit` of `visible_photos` over every model version's embeddings, and
    whether any CLIP could embed the query. Model versions sharing a CLIP share one query embedding (the active
    model's when it is one of them)."""
    embedded = Photo.objects.filter(embedding_model=OuterRef("pk"))
    versions = list(ModelVersion.objects.filter(Exists(embedded)))
    if not versions:
        return [], False
    nearest = pgvector.nearest if pgvector.in_use() else memory.nearest
    by_clip: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_clip.setdefault(version.clip_model or f"model {version.pk}", []).append(version)
    found_ids, found_similarities, searched = [], [], False
    for group in by_clip.values():
        embedder = next((version for version in group if version.is_active), group[0])
        try:
            vector = query_embedding(embedder, query)
        except Exception as error:  # a missing checkpoint or a CLIP that cannot load: text search still answers
            logger.warning("image search with %s is unavailable: %s", embedder.name, error, exc_info=True)
            notes.append(f"Image search with the model {embedder.name!r} is unavailable: {error}")
            continue
        searched = True
        photo_ids, similarities = nearest([version.pk for version in group], vector, visible_photos, limit)
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
