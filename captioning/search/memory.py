"""The in-memory image index: one float32 matrix of normalised CLIP embeddings per model version and per
process, for SQLite and PostgreSQL without pgvector. 100,000 photos of a 512-d CLIP take 200 MB and one
matrix-vector product (benchmarks/search.py). Each search first asks the database what changed since (a count
and the latest `updated_at`, on an index), so a matrix is loaded once and then kept fresh by small reads."""

import threading

import numpy as np
from django.db.models import Count, Max

from captioning.models import Photo, embedding_from_bytes


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
        with self._lock:  # one consistent view: a refresh in another thread may replace the buffers
            photo_ids, galleries, vectors = self.photo_ids, self.gallery_ids, self.vectors
        if photo_ids.size == 0 or query_vector.shape[0] != vectors.shape[1]:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        # One product over every row, then the visible ones: cheaper than copying the visible rows out first.
        # einsum rather than `@`: OpenBLAS splits a matrix-vector product over threads that then spin for a
        # while; measured at 10,000 x 512, `@` took 2 ms of this thread and 18 ms of the process's CPU, einsum
        # 0.8 ms of both (a web process's CPU is what the other requests wait for).
        similarities = np.einsum("ij,j->i", vectors, query_vector)
        visible = np.isin(galleries, gallery_ids)
        if visible.all():
            return photo_ids, similarities
        return photo_ids[visible], similarities[visible]


_indexes: dict[int, EmbeddingIndex] = {}
_indexes_lock = threading.Lock()


def embedding_index(model_version_id: int) -> EmbeddingIndex:
    """The process's index of `model_version_id`'s embeddings, brought up to date."""
    with _indexes_lock:
        index = _indexes.get(model_version_id)
        if index is None:
            index = _indexes[model_version_id] = EmbeddingIndex(model_version_id)
    index.refresh()
    return index


def forget_indexes() -> None:
    """Drops every in-memory index (tests, and a process that wants its memory back)."""
    with _indexes_lock:
        _indexes.clear()


def nearest(
    model_version_ids: list[int], query_vector: np.ndarray, gallery_ids: np.ndarray, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, cosines) of the photos in `gallery_ids` that the model versions embedded, against
    `query_vector` (normalised): every one of them, exactly (the caller keeps the best `limit`)."""
    found = [embedding_index(version_id).similarities(query_vector, gallery_ids) for version_id in model_version_ids]
    return np.concatenate([ids for ids, _ in found]), np.concatenate([values for _, values in found])
