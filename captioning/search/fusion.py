"""Reciprocal rank fusion: one list from the image ranking and the caption-word ranking. Each photo scores
1/(RANK_FUSION_K + rank) in each list it is in, which needs no calibration between a cosine and a count of
words."""

from collections.abc import Sequence

from captioning.search.results import SearchHit

RANK_FUSION_K = 60


def fuse(
    image_ranked: Sequence[tuple[int, float]], text_ranked: Sequence[tuple[int, float]], limit: int
) -> list[SearchHit]:
    """The best `limit` photos of both rankings ((photo id, value) best first), ties broken by newest id."""
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
