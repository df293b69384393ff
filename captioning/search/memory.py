"""The in-memory image index: one float32 matrix of normalised CLIP embeddings per model version and per
process, for SQLite and PostgreSQL without pgvector. 100,000 photos of a 512-d CLIP take 200 MB and one
matrix-vector product (benchmarks/search.py). Each search first asks the database for the latest `updated_at`
(the last entry of an index), so a matrix is loaded once and then kept fresh by small reads; the photos are
counted, to notice deleted ones, at most every RECOUNT_SECONDS (a count reads the whole index: 100 ms at a
million photos). Until then a deleted photo may still be ranked, never shown: results are read back through
the visibility selector."""

import threading
import time

import numpy as np
from django.db import connection
from django.db.models import Max

from captioning.models import Photo, embedding_from_bytes
from captioning.selectors import UserOrAnonymous, photo_id_list_visible_to, photo_visible_sql

RECOUNT_SECONDS = 30.0


class EmbeddingIndex:
    """The normalised CLIP embeddings of the photos one model version embedded (which galleries hold them, and
    so who may see them, is asked of the database at each search: see `nearest`).

    `refresh()` brings it up to date with the database: nothing is read when the latest `updated_at` is
    unchanged (and, when it is time to count again, the count), the changed rows otherwise, and the list of ids
    too when the count says some were removed.
    Rows are kept in buffers sized to the count on the first load, then grown by an eighth, so new photos do not
    copy the whole matrix each time.
    """

    def __init__(self, model_version_id: int):
        self.model_version_id = model_version_id
        self._size = 0
        self._ids = np.empty(0, dtype=np.int64)
        self._vectors = np.empty((0, 0), dtype=np.float32)
        self._row_of: dict[int, int] = {}
        self._expected_count = 0  # the rows a refresh expects: the count, when it counted
        self._seen_until = None
        self._recount_at = 0.0  # time.monotonic() after which the next refresh counts the rows
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return self._size

    @property
    def photo_ids(self) -> np.ndarray:
        return self._ids[: self._size]

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors[: self._size]

    def _rows(self):
        # The worker writes a photo's embedding and its model together: the model is enough to select them, and
        # the count and latest time then come from the (embedding_model, updated_at) index alone.
        return Photo.objects.filter(embedding_model_id=self.model_version_id)

    def refresh(self) -> None:
        with self._lock:
            latest = self._rows().aggregate(latest=Max("updated_at"))["latest"]
            count = None
            if time.monotonic() >= self._recount_at:
                count = self._rows().count()
                self._recount_at = time.monotonic() + RECOUNT_SECONDS
            if latest == self._seen_until and count in (None, self._size):
                return
            changed = self._rows()
            if self._seen_until is not None:
                # Inclusive: rows written in the same instant as the last one seen are read again, not missed.
                changed = changed.filter(updated_at__gte=self._seen_until)
            rows = changed.values_list("pk", "embedding", "updated_at").order_by()
            self._expected_count = count or self._size
            for photo_id, embedding, updated_at in rows.iterator(chunk_size=2000):
                if embedding is not None:
                    self._put(photo_id, embedding_from_bytes(embedding))
                elif photo_id not in self._row_of:  # no vector: counted, never found by image
                    self._put(photo_id, None)
                if self._seen_until is None or updated_at > self._seen_until:
                    self._seen_until = updated_at
            if count is not None and self._size != count:
                self._keep_only(set(self._rows().values_list("pk", flat=True).order_by()))

    def _put(self, photo_id: int, vector: np.ndarray | None) -> None:
        if vector is None:
            vector = np.zeros(self._vectors.shape[1], dtype=np.float32)
        if self._vectors.shape[1] != vector.shape[0]:  # the first row (a model's CLIP has one size)
            self._size, self._row_of = 0, {}
            self._vectors = np.empty((0, vector.shape[0]), dtype=np.float32)
        row = self._row_of.get(photo_id)
        if row is None:
            row = self._size
            if row == len(self._ids):
                # Room for every row the database counted, then an eighth more: while a buffer grows, the old
                # and the new one are both held, and growing by half made that 2.5 times the matrix at a peak.
                self._reserve(max(self._expected_count, row + max(16, row // 8)))
            self._size += 1
            self._row_of[photo_id] = row
            self._ids[row] = photo_id
        norm = float(np.linalg.norm(vector))
        self._vectors[row] = vector / norm if norm > 0 else vector

    def _reserve(self, capacity: int) -> None:
        ids = np.empty(capacity, dtype=np.int64)
        vectors = np.empty((capacity, self._vectors.shape[1]), dtype=np.float32)
        ids[: self._size], vectors[: self._size] = self.photo_ids, self.vectors
        self._ids, self._vectors = ids, vectors

    def _keep_only(self, present: set[int]) -> None:
        keep = np.fromiter((photo_id in present for photo_id in self.photo_ids.tolist()), dtype=bool, count=self._size)
        self._ids = self.photo_ids[keep].copy()
        self._vectors = np.ascontiguousarray(self.vectors[keep])
        self._size = len(self._ids)
        self._row_of = {photo_id: row for row, photo_id in enumerate(self._ids.tolist())}

    def similarities(self, query_vector: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(photo ids, cosine similarities) of every photo of the index."""
        with self._lock:  # one consistent view: a refresh in another thread may replace the buffers
            photo_ids, vectors = self.photo_ids, self.vectors
        if photo_ids.size == 0 or query_vector.shape[0] != vectors.shape[1]:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        # einsum rather than `@`: OpenBLAS splits a matrix-vector product over threads that then spin for a
        # while; measured at 10,000 x 512, `@` took 2 ms of this thread and 18 ms of the process's CPU, einsum
        # 0.8 ms of both (a web process's CPU is what the other requests wait for).
        return photo_ids, np.einsum("ij,j->i", vectors, query_vector)


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
    model_version_ids: list[int], query_vector: np.ndarray, user: UserOrAnonymous | None, floor: float, limit: int
) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, cosines) of the photos `user` may see that the model versions embedded and that score at least
    `floor` against `query_vector` (normalised): every one of them, exactly (the caller keeps the best `limit`).

    Every photo is scored first. When at most `limit` reach the floor (a query matches few photos), the database
    is asked which of those `user` may see (`selectors.photo_visible_sql`, each tested); otherwise every photo
    they may see is listed (`selectors.photo_id_list_visible_to`) and the scores masked with it."""
    found = [embedding_index(version_id).similarities(query_vector) for version_id in model_version_ids]
    photo_ids = np.concatenate([ids for ids, _ in found])
    similarities = np.concatenate([values for _, values in found])
    reaching = similarities >= floor
    photo_ids, similarities = photo_ids[reaching], similarities[reaching]
    if photo_ids.size == 0:
        return photo_ids, similarities
    visible_ids = _visible_among(photo_ids, user) if photo_ids.size <= limit else _visible_ids(user)
    visible = np.isin(photo_ids, visible_ids)
    return photo_ids[visible], similarities[visible]


def _visible_among(photo_ids: np.ndarray, user: UserOrAnonymous | None) -> np.ndarray:
    """Those of `photo_ids` that `user` may see."""
    visible_sql, visible_params = photo_visible_sql(user, photo_id_sql="candidates.photo_id")
    candidates = ", ".join(["(%s)"] * photo_ids.size)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH candidates(photo_id) AS (VALUES {candidates}) "
            f"SELECT photo_id FROM candidates WHERE EXISTS ({visible_sql})",
            [*photo_ids.tolist(), *visible_params],
        )
        return np.array(cursor.fetchall(), dtype=np.int64).reshape(-1)


def _visible_ids(user: UserOrAnonymous | None) -> np.ndarray:
    """Every photo `user` may see."""
    # Read by the cursor: Django's own iteration cost 10 Python calls an id (thousands of them a search).
    sql, params = photo_id_list_visible_to(user).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return np.array(cursor.fetchall(), dtype=np.int64).reshape(-1)
